"""One training per work dir (an OS lock the kernel releases with the process), and tools writing beside it."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, TINY_MODEL, run_tool
from deeplabv3.fileio import file_mode
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


@contextlib.contextmanager
def training(config, overrides):
    """A tools/train.py process (stderr piped), killed if still running when the block ends."""
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "--config", str(config), "--set", *overrides]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        proc.stderr.close()


def resume_for_two_more_steps(config, overrides, work):
    """Continue the run in ``work`` from its last checkpoint; returns the step it resumed at."""
    stopped = int((work / "last_checkpoint").read_text().strip().split("_")[-1].split(".")[0])
    result = run_tool("train", ["--config", config, "--resume", "--set", *overrides,
                                f"train.max_steps={stopped + 2}"], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {stopped} " in result.stderr
    resumed = next(line for line in result.stderr.splitlines() if "resumed from" in line)
    assert "ignored" not in result.stderr and "not used" not in resumed, resumed
    assert "restored 117 network tensors, 74 optimizer and loss-scale tensors" in resumed, resumed
    return stopped


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
    with training(config, overrides) as first:
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
    steps = steps_logged(work)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 12
    for checkpoint in (work / "checkpoints").iterdir():  # the umask's mode, as for every other file
        assert checkpoint.stat().st_mode & 0o777 == file_mode(), (checkpoint, oct(checkpoint.stat().st_mode))

    # The kernel released the SIGKILLed holder's lock: the run continues in the same directory.
    resume_for_two_more_steps(config, overrides, work)


# ------------------------------------------------------------------------------------------ file-system faults


def mount_tmpfs(path, options):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, timeout=30)
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs (root only: a real file system that fills up)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs for the full-disk case")
    path = mount_tmpfs(tmp_path / "disk", "size=16m")
    yield path
    subprocess.run(["umount", "-l", str(path)], timeout=30)


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nothing can be created in: a read-only tmpfs as root, a mode-0555 directory otherwise."""
    path = tmp_path / "read_only"
    if os.geteuid() == 0:
        yield mount_tmpfs(path, "ro,size=1m")
        subprocess.run(["umount", "-l", str(path)], timeout=30)
    else:
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)


def error_of(result):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return " ".join(result.stderr.split())


def test_file_system_faults_are_named_before_any_work(data, weights, tmp_path, read_only_dir):
    mindrecord, val_list, config = data
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory\n", encoding="utf-8")
    train_args = ["--config", config, "--set", *run_overrides(mindrecord, a_file, 2)]
    assert f"error: work dir {a_file} is a file, not a directory" in error_of(run_tool("train", train_args))
    train_args[-1] = f"runtime.work_dir={read_only_dir / 'work'}"
    reason = "read-only file system" if os.geteuid() == 0 else "permission denied"
    assert f"work dir {read_only_dir / 'work'}: {reason}" in error_of(run_tool("train", train_args))

    eval_args = ["--config", config, "--checkpoint", weights, "--set", *TINY_MODEL, f"data.eval.list={val_list}",
                 "eval.crop_size=49", f"runtime.work_dir={tmp_path / 'eval_work'}"]
    for out, expected in ((tmp_path, f"--out {tmp_path} is a directory; give a file name"),
                          (a_file / "results.json", f"the directory of --out {a_file / 'results.json'}, {a_file} "
                                                    f"is a file, not a directory"),
                          (read_only_dir / "results.json", f"{read_only_dir}: {reason}")):
        message = error_of(run_tool("eval", [*eval_args[:4], "--out", out, *eval_args[4:]], timeout=120))
        assert expected in message and "evaluating" not in message, message
    eval_args[3] = tmp_path
    assert f"checkpoint {tmp_path} is a directory" in error_of(run_tool("eval", eval_args, timeout=120))

    predict = ["--config", config, "--checkpoint", weights, "--input", val_list, "--out-dir", a_file, "--set",
               *TINY_MODEL]
    assert f"--out-dir {a_file} is a file, not a directory" in error_of(run_tool("predict", predict, timeout=120))


def test_a_missing_mindrecord_is_recorded_in_train_log(data, tmp_path):
    mindrecord, _, config = data
    work = tmp_path / "work"
    missing = tmp_path / "missing.mindrecord0"
    message = error_of(run_tool("train", ["--config", config, "--set", *run_overrides(mindrecord, work, 2),
                                          f"data.train.mindrecord={missing}"]))
    assert f"error: MindRecord not found: {missing}" in message
    log = (work / "train.log").read_text(encoding="utf-8")
    assert f"ERROR error: MindRecord not found: {missing}" in log, log[-2000:]


def test_a_checkpoint_folder_that_is_a_file_stops_the_run_with_exit_2(data, tmp_path):
    mindrecord, _, config = data
    work = tmp_path / "work"
    (work / "checkpoints").parent.mkdir()
    (work / "checkpoints").write_text("in the way\n", encoding="utf-8")
    message = error_of(run_tool("train", ["--config", config, "--set", *run_overrides(mindrecord, work, 2)]))
    assert f"{work / 'checkpoints'}: already exists" in message, message
    assert "stopped" not in message and f"{work / 'checkpoints'}: already exists" in (work / "train.log").read_text()


def test_a_disk_filling_up_during_training_stops_it_with_exit_2_and_resume_continues(data, small_disk):
    mindrecord, _, config = data
    work = small_disk / "work"
    overrides = run_overrides(mindrecord, work, 100000, ["train.save_steps=3", "train.keep_checkpoint_max=1"])
    with training(config, overrides) as proc:
        wait_for(proc, "step 4/")
        with pytest.raises(OSError, match="No space left"):  # what fills the disk: another program's file
            with (small_disk / "filler").open("wb", buffering=0) as filler:
                while True:
                    filler.write(b"\0" * (1 << 16))
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 2, rest[-3000:]
    message = " ".join(rest.split())
    assert "Traceback" not in message and f"error: {work}" in message, message
    assert f"no space left (No space left on device); the file system at {small_disk} (" in message, message
    assert "MiB free of 16.0 MiB) is full" in message
    assert not [p.name for p in work.rglob("*") if ".tmp" in p.name]
    (small_disk / "filler").unlink()
    stopped = resume_for_two_more_steps(config, overrides, work)
    assert stopped >= 3 and stopped % 3 == 0
