"""The train step: loss scaling, overflow skipping, accumulation, gradient reducers, frozen BatchNorm, loss."""
from __future__ import annotations

import numpy as np
import pytest

import mindspore as ms

from deeplabv3.config import load_config
from deeplabv3.engine.losses import SegmentationCrossEntropy
from deeplabv3.engine.optim import build_optimizer, group_parameters
from deeplabv3.engine.loop_state import LoopState, NonFiniteLossError
from deeplabv3.engine.train_step import TrainStep, freeze_batchnorm
from deeplabv3.runtime import get_logger
from engine_helpers import random_batch, snapshot, tiny_net


# Training runs compiled.
pytestmark = [pytest.mark.usefixtures("execution_mode"),
              pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)]


def make_step(*overrides, accum=1, reducer=None, net=None, freeze=False, steps=20):
    cfg = load_config(overrides=["schedule.name=constant", "schedule.warmup_epochs=0", "schedule.base_lr=0.05",
                                 "loss_scale.scale=1024", *overrides])
    net = net if net is not None else tiny_net()
    if freeze:
        freeze_batchnorm(net)
    net.set_train(True)
    lr = np.full(steps, cfg.schedule.base_lr, np.float32)
    optimizer = build_optimizer(net.trainable_params(), cfg.optimizer, lr, get_logger())
    step = TrainStep(net, SegmentationCrossEntropy(255), optimizer, cfg.loss_scale, accum, reducer)
    return net, step


def counted(state, stats, limit=0):
    """``stats`` after the loop has counted them into ``state`` (one batch per step, ``limit`` as
    loss_scale.max_consecutive_nonfinite)."""
    state.advance(stats, 1, 100, limit)
    return stats


def inf_batch():
    images, labels = random_batch()
    poisoned = images.asnumpy().copy()
    poisoned[0, 0, 3, 3] = np.inf
    return ms.Tensor(poisoned), labels


def test_fixed_scale_gives_the_same_update_as_no_scale():
    batch = random_batch()
    results = []
    for kind in ("none", "fixed"):
        net, step = make_step(f"loss_scale.type={kind}")
        for _ in range(3):
            stats = step([batch])
        assert stats.scale == (1.0 if kind == "none" else 1024.0)
        results.append(snapshot(net.get_parameters()))
    for name, value in results[0].items():
        np.testing.assert_allclose(results[1][name], value, rtol=1e-6, atol=1e-7, err_msg=name)


def test_injected_inf_skips_the_update_and_halves_a_dynamic_scale():
    net, step = make_step("loss_scale.type=dynamic")
    state = LoopState()
    counted(state, step([random_batch()]))
    before = snapshot(net.get_parameters())
    moments = snapshot(step.optimizer.moments)
    lr_index = int(step.optimizer.global_step.asnumpy()[0])

    stats = counted(state, step([inf_batch()]))
    assert not stats.finite and stats.scale == 1024.0
    assert float(step.scaler.scale.asnumpy()) == 512.0
    assert state.skipped_steps == 1 and state.nonfinite_run == 1
    after = snapshot(net.get_parameters())
    for name, value in before.items():  # weights, BN affine and BN running statistics alike
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    for name, value in moments.items():
        np.testing.assert_array_equal(snapshot(step.optimizer.moments)[name], value, err_msg=name)
    assert int(step.optimizer.global_step.asnumpy()[0]) == lr_index + 1  # the LR stays aligned with the step

    stats = counted(state, step([random_batch(seed=1)]))
    assert stats.finite and stats.scale == 512.0 and state.nonfinite_run == 0
    assert not np.array_equal(net.conv.weight.asnumpy(), before["conv.weight"])


def test_dynamic_scale_grows_after_a_window_of_finite_steps():
    _, step = make_step("loss_scale.type=dynamic", "loss_scale.window=2", "loss_scale.factor=4")
    scales = [step([random_batch()]).scale for _ in range(5)]
    assert scales == [1024.0, 1024.0, 4096.0, 4096.0, 16384.0]


def test_fixed_scale_also_skips_non_finite_steps_and_the_loop_stops_after_the_limit():
    net, step = make_step("loss_scale.type=fixed")
    state, limit = LoopState(), 2  # loss_scale.max_consecutive_nonfinite
    before = snapshot(net.trainable_params())
    assert not counted(state, step([inf_batch()]), limit).finite
    assert float(step.scaler.scale.asnumpy()) == 1024.0
    with pytest.raises(NonFiniteLossError, match="2 consecutive steps"):
        counted(state, step([inf_batch()]), limit)
    for name, value in before.items():
        np.testing.assert_array_equal(snapshot(net.trainable_params())[name], value)


def test_accumulating_two_half_batches_equals_one_full_batch():
    images, labels = random_batch(n=4)
    halves = [(images[:2], labels[:2]), (images[2:], labels[2:])]
    # Frozen BatchNorm: batch statistics would otherwise differ between halves and the whole.
    full_net, full = make_step(freeze=True)
    acc_net, acc = make_step(accum=2, freeze=True)
    assert full.fused and not acc.fused
    for _ in range(2):
        full_stats = full([(images, labels)])
        acc_stats = acc(halves)
    assert acc_stats.loss == pytest.approx(full_stats.loss, rel=1e-5)
    for name, value in snapshot(full_net.get_parameters()).items():
        np.testing.assert_allclose(snapshot(acc_net.get_parameters())[name], value, rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def test_host_reducer_sees_each_step_once_and_propagates_another_ranks_overflow():
    """A Python reducer (e.g. mpi4py) runs between two graphs; its mean over ranks decides the overflow flag."""
    calls = []

    def mean_with_peer(grads, peer_overflow=False):
        calls.append(len(grads))
        out = []
        for i, g in enumerate(grads):
            mine = g.asnumpy()
            peer = np.full_like(mine, np.inf) if (peer_overflow and i == 0) else mine
            out.append(ms.Tensor((mine + peer) / 2))
        return tuple(out)

    batch = random_batch()
    ref_net, ref = make_step()
    net, step = make_step(reducer=mean_with_peer)
    assert not step.fused
    ref([batch])
    step([batch])
    assert calls == [len(step.weights)]
    for name, value in snapshot(ref_net.get_parameters()).items():
        np.testing.assert_allclose(snapshot(net.get_parameters())[name], value, rtol=1e-6, atol=1e-7)

    _, overflowing = make_step(reducer=lambda g: mean_with_peer(g, peer_overflow=True))
    state = LoopState()
    stats = counted(state, overflowing([batch]))
    assert not stats.finite and state.skipped_steps == 1


def test_freeze_bn_keeps_statistics_and_affine_parameters():
    net, step = make_step(freeze=True)
    frozen = {name: value for name, value in snapshot(net.get_parameters()).items() if ".bn1." in name}
    assert len(frozen) == 4 and all(".bn1." not in p.name for p in step.weights)
    conv = net.conv.weight.asnumpy().copy()
    for seed in range(2):
        step([random_batch(seed=seed)])
    for name, value in frozen.items():
        np.testing.assert_array_equal(snapshot(net.get_parameters())[name], value, err_msg=name)
    assert not np.array_equal(net.conv.weight.asnumpy(), conv)


def test_weight_decay_reaches_only_weights_and_the_lr_multiplier_scales_it():
    """An all-ignored batch has zero gradients, so the step is pure weight decay: w <- w * (1 - lr * mult * wd)."""
    net, step = make_step("optimizer.weight_decay=0.1", "optimizer.momentum=0.0", "optimizer.backbone_lr_mult=0.5")
    images, labels = random_batch()
    ignored = ms.Tensor(np.full(labels.shape, 255, np.int32))
    before = snapshot(net.trainable_params())
    stats = step([(images, ignored)])
    assert stats.finite and stats.loss == 0.0
    after = snapshot(net.trainable_params())
    np.testing.assert_allclose(after["conv.weight"], before["conv.weight"] * (1 - 0.05 * 0.1), rtol=1e-6)
    np.testing.assert_allclose(after["backbone.conv1.weight"], before["backbone.conv1.weight"] * (1 - 0.025 * 0.1),
                               rtol=1e-6)
    for name in ("conv.bias", "backbone.bn1.gamma", "backbone.bn1.beta"):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_parameter_groups_by_name():
    cfg = load_config(overrides=["optimizer.backbone_lr_mult=0.1", "optimizer.bias_lr_mult=2"])
    groups = group_parameters(tiny_net().trainable_params(), cfg.optimizer)
    named = {(key.decay, key.lr_mult): sorted(p.name for p in params) for key, params in groups.items()}
    assert named == {
        (True, 0.1): ["backbone.conv1.weight"],
        (False, 0.1): ["backbone.bn1.beta", "backbone.bn1.gamma"],
        (True, 1.0): ["conv.weight"],
        (False, 2.0): ["conv.bias"],
    }


def test_loss_averages_over_the_valid_pixels_of_the_whole_batch():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 5, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 5, (2, 6, 6)).astype(np.int32)
    labels[0, :5] = 255  # image 0 keeps 6 valid pixels, image 1 all 36
    loss = float(SegmentationCrossEntropy(255)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy())
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    valid = labels != 255
    nll = -np.take_along_axis(log_p, np.where(valid, labels, 0)[:, None], 1)[:, 0]
    assert loss == pytest.approx(nll[valid].mean(), rel=1e-5)
    assert loss != pytest.approx(np.mean([nll[i][valid[i]].mean() for i in range(2)]), rel=1e-3)


def test_all_ignored_batch_gives_zero_loss_and_zero_gradients():
    loss_fn = SegmentationCrossEntropy(255)
    logits = ms.Tensor(np.random.default_rng(0).normal(size=(2, 3, 4, 4)).astype(np.float32))
    labels = ms.Tensor(np.full((2, 4, 4), 255, np.int32))
    loss, grad = ms.value_and_grad(loss_fn)(logits, labels)
    assert float(loss.asnumpy()) == 0.0
    assert np.all(grad.asnumpy() == 0) and np.all(np.isfinite(grad.asnumpy()))



def _host_mean(grads):
    """A host-side reducer like mpi4py's: the gradients leave the graph and come back as new tensors."""
    return tuple(ms.Tensor(g.asnumpy()) for g in grads)


STEP_PATHS = {"fused": {}, "host reducer": {"reducer": _host_mean}, "accumulation": {"accum": 2},
              "accumulation + host reducer": {"accum": 2, "reducer": _host_mean}}


@pytest.mark.parametrize("path", list(STEP_PATHS))
def test_the_step_compiles_in_its_first_call_only(path):
    options = STEP_PATHS[path]
    _, step = make_step(steps=30, **options)
    assert step.fused == (path == "fused")
    batches = [random_batch(seed=s) for s in range(options.get("accum", 1))]
    step(batches)
    after_first = step.compiled_graphs()
    assert after_first >= 1
    for seed in range(1, 25):
        step([random_batch(seed=seed + i) for i in range(len(batches))])
    assert step.compiled_graphs() == after_first


def _rss_mib() -> float:
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_memory_stays_flat_over_200_split_steps():
    """The split step (host reduction) is the one that used to keep a graph per step."""
    _, step = make_step(steps=210, reducer=_host_mean, accum=2)
    batches = [random_batch(seed=0), random_batch(seed=1)]
    for _ in range(20):
        step(batches)
    start = _rss_mib()
    for _ in range(180):
        step(batches)
    assert _rss_mib() - start < 32, f"RSS grew from {start:.0f} MiB to {_rss_mib():.0f} MiB over 180 steps"


class _CellMean(ms.nn.Cell):
    """An in-graph reducer (like the MindSpore backend's AllReduceMean) called from the split step."""

    def construct(self, grads):
        return ms.ops.HyperMap()(ms.ops.partial(ms.ops.mul, 1.0), grads)


def test_a_cell_reducer_in_the_split_step_compiles_once():
    _, step = make_step(steps=30, accum=2, reducer=_CellMean())
    batches = [random_batch(seed=0), random_batch(seed=1)]
    step(batches)
    after_first = step.compiled_graphs()
    for _ in range(10):
        step(batches)
    assert step.compiled_graphs() == after_first


@pytest.mark.parametrize("level", ["O2", "O3"])
def test_amp_keeps_the_networks_parameters_so_weights_load_before_or_after_it(level):
    """The trainer builds amp, optimizer and step once and may load weights into the built network afterwards."""
    from conftest import TINY_MODEL
    from deeplabv3.engine.train_step import apply_amp
    from deeplabv3.models import build_model

    net = build_model(load_config(overrides=TINY_MODEL))
    amp = apply_amp(net, level)
    assert amp is not net
    built = {p.name: p for p in net.get_parameters()}
    assert sorted(p.name for p in amp.get_parameters()) == sorted(built)
    assert all(p is built[p.name] for p in amp.get_parameters())


def test_apply_amp_refuses_an_unresolved_level():
    """MindSpore has an 'auto' level of its own; the config's 'auto' must be resolved before it gets there."""
    from deeplabv3.engine.train_step import apply_amp

    with pytest.raises(ValueError, match="resolve 'auto'"):
        apply_amp(tiny_net(), "auto")
