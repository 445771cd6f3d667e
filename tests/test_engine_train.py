"""End-to-end training through tools/train.py on a generated MindRecord: loss, work dir, resume, signals."""
from __future__ import annotations

import json
import signal
import sys

import numpy as np
import pytest

from conftest import REPO, TINY_MODEL, run_tool
from engine_helpers import run_overrides, signal_when, snapshot, write_training_set


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_data")
    return write_training_set(root), root / "train.txt"


@pytest.fixture(scope="module")
def empty_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine_cfg") / "empty.yaml"
    path.write_text("{}\n", encoding="utf-8")
    return path


def train(config, overrides, *extra, timeout=300):
    result = run_tool("train", ["--config", config, *extra, "--set", *overrides], timeout=timeout)
    return result


def records(work_dir, kind):
    lines = (work_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_training_lowers_the_loss_and_fills_the_work_dir(data, empty_config, tmp_path):
    from deeplabv3.config import load_config
    from deeplabv3.models import build_model, load_checkpoint

    mindrecord, val_list = data
    work = tmp_path / "work"
    overrides = run_overrides(mindrecord, work, 40, ["train.save_steps=10", "train.keep_checkpoint_max=2",
                                                     "train.eval_interval=20", f"data.eval.list={val_list}",
                                                     "eval.crop_size=49"])
    result = train(empty_config, overrides)
    assert result.returncode == 0, result.stderr[-3000:]

    losses = [r["loss"] for r in records(work, "train")]
    assert [r["step"] for r in records(work, "train")] == list(range(1, 41))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    first = records(work, "train")[0]
    for key in ("epoch", "lr", "loss_avg", "loss_scale", "step_time", "data_time", "images_per_sec", "eta_sec",
                "peak_rss_mb"):
        assert key in first
    evals = records(work, "eval")
    assert [r["step"] for r in evals] == [20, 40] and all(0 <= r["mIoU"] <= 100 for r in evals)
    # the second periodic evaluation runs the graph the first one compiled (one predictor for the whole run)
    assert evals[0]["graphs"] == evals[1]["graphs"] == 1, evals

    assert load_config(work / "config.yaml") == load_config(overrides=overrides)
    log = (work / "train.log").read_text()
    assert "step 40/40" in log and "ETA" in log and "img/s" in log and "peak RSS" in log
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["step_00000030.ckpt", "step_00000040.ckpt"]
    assert (work / "last_checkpoint").read_text().strip() == "checkpoints/step_00000040.ckpt"
    # Both the training checkpoint (optimizer state ignored) and best.ckpt load strictly into a fresh network.
    cfg = load_config(work / "config.yaml")
    for path in (work / "checkpoints" / "step_00000040.ckpt", work / "best.ckpt"):
        report = load_checkpoint(build_model(cfg), path, strict=True)
        assert not report.missing and not report.unexpected


def test_resume_from_a_checkpoint_is_exact(data, empty_config, tmp_path):
    """Stopped at step 5 and resumed to 12 == 12 uninterrupted steps, bit for bit (warmup + cosine LR,
    dynamic loss scale whose counter crosses the checkpoint, deterministic data, no dropout)."""
    from deeplabv3.models.checkpoint import read_checkpoint

    mindrecord, _ = data
    extra = ["train.save_steps=5", "schedule.name=cosine", "schedule.warmup_epochs=1", "loss_scale.type=dynamic",
             "loss_scale.window=3", "model.dropout=0.0", "train.log_interval=4"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    result = train(empty_config, run_overrides(mindrecord, straight, 12, extra))
    assert result.returncode == 0, result.stderr[-3000:]
    result = train(empty_config, run_overrides(mindrecord, resumed, 12, extra), "--resume",
                   straight / "checkpoints" / "step_00000005.ckpt")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "at step 5" in result.stderr

    a = read_checkpoint(straight / "checkpoints" / "step_00000012.ckpt")
    b = read_checkpoint(resumed / "checkpoints" / "step_00000012.ckpt")
    assert a.keys() == b.keys()
    assert float(a["loss_scale"]) == 1024.0 * 2 ** 4  # grew after steps 3, 6, 9 and 12, across the resume
    for name in a:
        if name != "format":
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    assert [r["step"] for r in records(resumed, "train")] == [8, 12]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_saves_and_resume_continues_from_it(data, empty_config, tmp_path, signum):
    """SIGINT (Ctrl-C, to the process alone) mid-step stays SIGINT, though MindSpore's runtime converts it."""
    mindrecord, _ = data
    work = tmp_path / "work"
    overrides = run_overrides(mindrecord, work, 100000, ["train.log_interval=10"])
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "--config", str(empty_config), "--set", *overrides]
    status, rest = signal_when(cmd, "step 20/", signum)
    name = signal.Signals(signum).name
    assert status == 128 + signum, rest
    assert f"interrupted by {name}" in rest, rest
    assert "Traceback" not in rest and "continue with --resume" in rest
    target = (work / "last_checkpoint").read_text().strip()
    stopped = int(target.split("_")[-1].split(".")[0])
    assert stopped >= 20

    # --resume without a path continues from last_checkpoint; a run of a few more steps finishes.
    result = train(empty_config, [*overrides, f"train.max_steps={stopped + 3}"], "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {stopped} " in result.stderr
    assert [r["step"] for r in records(work, "train")][-1] == stopped + 3
    assert (work / "last_checkpoint").read_text().strip() == f"checkpoints/step_{stopped + 3:08d}.ckpt"


def test_resume_without_a_checkpoint_and_a_fresh_run_over_checkpoints_exit_2(empty_config, tmp_path, data):
    mindrecord, _ = data
    result = train(empty_config, run_overrides(mindrecord, tmp_path / "fresh", 5), "--resume", timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --resume: no checkpoint in")
    assert "Traceback" not in result.stderr and not (tmp_path / "fresh").exists()

    used = tmp_path / "used"
    (used / "checkpoints").mkdir(parents=True)
    (used / "checkpoints" / "step_00000005.ckpt").write_bytes(b"")
    result = train(empty_config, run_overrides(mindrecord, used, 5), timeout=120)
    assert result.returncode == 2 and "holds checkpoints of an earlier run" in result.stderr
    assert "--resume" in result.stderr and "Traceback" not in result.stderr


def test_training_starts_from_init_checkpoint(tmp_path):
    from deeplabv3.config import load_config
    from deeplabv3.engine.trainer import _initial_weights
    from deeplabv3.models import build_model, save_weights
    from deeplabv3.runtime import get_logger

    cfg = load_config(overrides=TINY_MODEL)
    source = build_model(cfg)
    save_weights(source, tmp_path / "stage1.ckpt")
    cfg = load_config(overrides=[*TINY_MODEL, f"model.init_checkpoint={tmp_path / 'stage1.ckpt'}"])
    net = build_model(cfg)
    expected = snapshot(source.get_parameters())
    assert not np.array_equal(net.conv.weight.asnumpy(), expected["conv.weight"])
    _initial_weights(net, cfg, get_logger())
    for name, value in snapshot(net.get_parameters()).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
