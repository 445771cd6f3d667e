"""The auxiliary FCN head: its loss is added in training, it is gone in inference, its checkpoints load without it."""
from __future__ import annotations

import mindspore as ms
import numpy as np

from conftest import TINY_MODEL, run_tool
from deeplabv3.config import load_config
from deeplabv3.engine.auxiliary import with_auxiliary_head
from deeplabv3.engine.losses import build_loss
from deeplabv3.models import build_model, load_checkpoint
from engine_helpers import run_overrides, write_training_set


def test_head_adds_its_loss_in_training_and_disappears_in_inference():
    cfg = load_config(None, [*TINY_MODEL, "loss.aux_weight=0.4", "model.dropout=0"])
    ms.set_seed(0)
    net = build_model(cfg)
    names = [p.name for p in net.get_parameters()]
    wrapped, loss_fn, extra = with_auxiliary_head(net, build_loss(cfg), cfg)
    assert [p.name for p in wrapped.get_parameters()] == names + [p.name for p in extra]
    assert extra and all(p.name.startswith("aux_head.") for p in extra)

    x = ms.Tensor(np.random.default_rng(0).normal(size=(2, 3, 33, 33)).astype(np.float32))
    labels = ms.Tensor(np.random.default_rng(1).integers(0, 21, (2, 33, 33)).astype(np.int32))
    wrapped.set_train(False)
    net.set_train(False)
    np.testing.assert_array_equal(wrapped(x).asnumpy(), net(x).asnumpy())
    wrapped.set_train(True)
    main, aux = wrapped(x)
    plain = build_loss(cfg)
    expected = float(plain(main, labels).asnumpy()) + 0.4 * float(plain(aux, labels).asnumpy())
    assert float(loss_fn((main, aux), labels).asnumpy()) == np.float32(expected)
    assert with_auxiliary_head(net, plain, load_config(None, TINY_MODEL))[0] is net


def test_training_with_the_head_resumes_and_its_checkpoint_loads_without_it(tmp_path):
    record = write_training_set(tmp_path / "data", num_images=8)
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n", encoding="utf-8")
    work = tmp_path / "work"
    overrides = run_overrides(record, work, 4, ["loss.aux_weight=0.4", "train.save_steps=2"])
    first = run_tool("train", ["--config", config, "--set", *overrides, "train.max_steps=2"])  # stopped at 2
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_tool("train", ["--config", config, "--resume", "--set", *overrides])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    checkpoint = work / "checkpoints" / "step_00000004.ckpt"
    names = set(ms.load_checkpoint(str(checkpoint)))
    assert any(n.startswith("aux_head.") for n in names)
    plain = build_model(load_config(None, TINY_MODEL))
    report = load_checkpoint(plain, checkpoint, strict=True)
    assert not report.missing and not report.unexpected
    assert all(n.startswith("aux_head.") for n in report.unused) and report.unused
