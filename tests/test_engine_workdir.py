"""One training per work dir (an OS lock the kernel releases with the process), and tools writing beside it."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, TINY_MODEL, run_tool
from engine_helpers import run_overrides, write_training_set


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("workdir_data")
    config = root / "empty.yaml"
    config.write_text("{}\n", encoding="utf-8")
    return write_training_set(root), root / "train.txt", config


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A checkpoint of the tiny network, for evaluations beside a running training."""
    import mindspore as ms

    from deeplabv3.config import load_config
    from deeplabv3.models import build_model

    path = tmp_path_factory.mktemp("workdir_ckpt") / "tiny.ckpt"
    ms.set_seed(0)
    ms.save_checkpoint(build_model(load_config(overrides=TINY_MODEL)), str(path))
    return path


def start_training(config, overrides):
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "--config", str(config), "--set", *overrides]
    return subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(proc, text, seconds=240):
    deadline = time.monotonic() + seconds
    for line in proc.stderr:
        if text in line:
            return
        assert time.monotonic() < deadline, f"no '{text}' within {seconds} s"
    pytest.fail(f"the training ended (status {proc.wait()}) before '{text}'")


def steps_logged(work):
    return [json.loads(line)["step"] for line in (work / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["type"] == "train"]


def test_a_second_run_in_a_busy_work_dir_exits_2_naming_the_holder(data, weights, tmp_path):
    mindrecord, val_list, config = data
    work = tmp_path / "work"
    overrides = run_overrides(mindrecord, work, 100000, ["train.save_steps=2", "train.keep_checkpoint_max=100000"])
    first = start_training(config, overrides)
    try:
        wait_for(first, "step 3/")
        config_before = (work / "config.yaml").read_bytes()

        second = run_tool("train", ["--config", config, "--set", *overrides], timeout=120)
        assert second.returncode == 2, second.stderr[-3000:]
        message = " ".join(second.stderr.split())
        assert message.startswith(f"error: {work} is in use by pid {first.pid} on host {socket.gethostname()}, "
                                  f"started 20"), message
        assert "Traceback" not in message and "--work-dir" in message
        resumed = run_tool("train", ["--config", config, "--resume", "--set", *overrides], timeout=120)
        assert resumed.returncode == 2 and f"pid {first.pid}" in resumed.stderr, resumed.stderr[-3000:]
        assert (work / "config.yaml").read_bytes() == config_before

        # Evaluation beside the training: its own log and results, never the training's files.
        eval_args = ["--config", config, "--checkpoint", weights, "--set", *TINY_MODEL, f"runtime.work_dir={work}",
                     f"data.eval.list={val_list}", "eval.crop_size=49"]
        evaluated = run_tool("eval", eval_args, timeout=240)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        assert json.loads((work / "eval_results.json").read_text())["num_images"] == 16
        assert "evaluating 16 of 16 images" in (work / "eval.log").read_text()
        for name in ("metrics.jsonl", "train.log", "config.yaml", "last_checkpoint"):
            refused = run_tool("eval", [*eval_args[:4], "--out", work / name, *eval_args[4:]], timeout=120)
            assert refused.returncode == 2, refused.stderr[-3000:]
            assert f"--out {work / name} is a file of the training run in {work}" in " ".join(refused.stderr.split())
        wait_for(first, "step 12/")
        assert first.poll() is None
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        first.stderr.close()
    steps = steps_logged(work)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 12

    # The kernel released the SIGKILLed holder's lock: the run continues in the same directory.
    stopped = int((work / "last_checkpoint").read_text().strip().split("_")[-1].split(".")[0])
    result = run_tool("train", ["--config", config, "--resume", "--set", *overrides,
                                f"train.max_steps={stopped + 2}"], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {stopped} " in result.stderr
