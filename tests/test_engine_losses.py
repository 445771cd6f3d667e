"""Class-weighted and OHEM cross-entropy against NumPy oracles (loss and gradient); the default loss unchanged."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from deeplabv3.config import ConfigError, load_config
from deeplabv3.data.statistics import ClassStats, class_weights
from deeplabv3.engine.losses import BalancedSegmentationLoss, SegmentationCrossEntropy, build_loss

C = 4


def batch(seed: int = 0, n: int = 2, h: int = 5, w: int = 6):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, C, h, w)).astype(np.float32)
    labels = rng.integers(0, C, (n, h, w)).astype(np.int32)
    labels[rng.random((n, h, w)) < 0.2] = 255
    return logits, labels


def oracle(logits, labels, class_w, keep=None):
    """Weighted mean NLL and its gradient w.r.t. the logits, in float64."""
    x = logits.astype(np.float64).transpose(0, 2, 3, 1)
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    valid = labels != 255
    safe = np.where(valid, labels, 0)
    weight = valid * np.asarray(class_w, np.float64)[safe] * (keep if keep is not None else 1)
    nll = -np.log(np.take_along_axis(p, safe[..., None], -1)[..., 0])
    total = weight.sum()
    loss = (weight * nll).sum() / total
    onehot = np.eye(C)[safe]
    grad = (weight / total)[..., None] * (p - onehot)
    return loss, grad.transpose(0, 3, 1, 2), np.take_along_axis(p, safe[..., None], -1)[..., 0], valid


def loss_and_grad(loss_fn, logits, labels):
    grad_fn = ms.value_and_grad(lambda x, y: loss_fn(x, y))
    loss, grad = grad_fn(ms.Tensor(logits), ms.Tensor(labels))
    return float(loss.asnumpy()), grad.asnumpy()


def test_weighted_cross_entropy_matches_numpy():
    logits, labels = batch()
    weights = [0.5, 2.0, 1.0, 3.0]
    loss, grad = loss_and_grad(BalancedSegmentationLoss(C, 255, weights), logits, labels)
    expected, expected_grad, _, _ = oracle(logits, labels, weights)
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)


def test_unit_weights_equal_the_default_loss():
    logits, labels = batch(1)
    default = float(SegmentationCrossEntropy(255)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy())
    balanced = float(BalancedSegmentationLoss(C, 255, [1.0] * C)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy())
    assert balanced == pytest.approx(default, rel=1e-6)
    assert type(build_loss(load_config(None, [f"model.num_classes={C}"]))) is SegmentationCrossEntropy


@pytest.mark.parametrize("thresh, min_kept", [(0.7, 5), (0.05, 12), (0.7, 1000)])
def test_ohem_matches_mmseg_sampler_and_keeps_min_kept(thresh, min_kept):
    logits, labels = batch(2)
    loss_fn = BalancedSegmentationLoss(C, 255, None, ohem=True, thresh=thresh, min_kept=min_kept)
    loss, grad = loss_and_grad(loss_fn, logits, labels)
    _, _, true_prob, valid = oracle(logits, labels, [1.0] * C)
    # mmseg OHEMPixelSampler: threshold = max(thresh, sorted valid probabilities[min(batch_kept, n - 1)]); with
    # no more than batch_kept valid pixels, all are kept.
    ordered, batch_kept = np.sort(true_prob[valid]), min_kept * logits.shape[0]
    threshold = max(thresh, ordered[min(batch_kept, ordered.size - 1)])
    keep = valid & ((true_prob < threshold) | (valid.sum() <= batch_kept))
    assert keep.sum() >= min(min_kept * logits.shape[0], valid.sum())
    expected, expected_grad, _, _ = oracle(logits, labels, [1.0] * C, keep)
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)
    kept = loss_fn.kept(ms.Tensor(logits), *_nll_valid(logits, labels)).asnumpy()
    assert np.array_equal(kept, keep)


def _nll_valid(logits, labels):
    from deeplabv3.engine.losses import _nll

    nll, valid, _ = _nll(ms.Tensor(logits), ms.Tensor(labels), 255)
    return nll, valid


def test_all_ignored_batch_gives_zero_loss_and_gradient():
    logits, labels = batch(3)
    labels[:] = 255
    loss, grad = loss_and_grad(BalancedSegmentationLoss(C, 255, [1.0, 2.0, 3.0, 4.0], ohem=True), logits, labels)
    assert loss == 0.0 and not grad.any()


def test_balancing_weights_from_the_histogram():
    stats = ClassStats(3)
    stats.add(np.array([[0, 0, 0, 1]], np.uint8), "a")
    stats.add(np.array([[0, 2, 255, 255]], np.uint8), "b")
    inverse = class_weights(stats, "inverse_frequency")  # shares 4/6, 1/6, 1/6
    raw = np.array([6 / 4, 6, 6])
    np.testing.assert_allclose(inverse, raw / raw.mean())
    median = class_weights(stats, "median_frequency")  # class pixels / pixels of its images: 4/8, 1/4, 1/4
    freq = np.array([0.5, 0.25, 0.25])
    raw = np.median(freq) / freq
    np.testing.assert_allclose(median, raw / raw.mean())


def test_loss_config_errors():
    with pytest.raises(ConfigError, match="loss.class_weights"):
        load_config(None, ["loss.class_weights=[1, 2]"])
    with pytest.raises(ConfigError, match="loss.class_weights"):
        load_config(None, ["loss.class_weights=balanced"])
    with pytest.raises(ConfigError, match="loss.ohem_thresh"):
        load_config(None, ["loss.name=ohem", "loss.ohem_thresh=0"])


def test_training_runs_compiled_with_ohem_and_derived_weights(tmp_path):
    from conftest import run_tool
    from engine_helpers import run_overrides, write_training_set

    record = write_training_set(tmp_path / "data", num_images=8)
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n", encoding="utf-8")
    work = tmp_path / "work"
    overrides = run_overrides(record, work, 3, ["loss.name=ohem", "loss.ohem_min_kept=50",
                                                "loss.class_weights=median_frequency"])
    result = run_tool("train", ["--config", config, "--set", *overrides])
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "train.log").read_text()
    assert "loss.class_weights median_frequency from 8 training labels: background" in log
