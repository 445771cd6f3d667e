"""Stop signals under every launcher, 2 processes on 127.0.0.1: every rank stops, rank 0 saves once, nothing of the
job survives it, the exit status is 128 + the signal, and ``--resume`` continues bit-identically; evaluation stops
cleanly.

A Ctrl-C is simulated as the terminal sends it: SIGINT to the whole process group of the launch command.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from conftest import REPO
from distributed_helpers import (SCRIPTS, descendants, find_rank_process, last_checkpoint, launch_env, limited,
                                 max_abs_diff, network_params, run_launch, wait_for_text, write_mindrecord,
                                 write_scenes, write_tiny_config)
from engine_helpers import signal_when
from deeplabv3.distributed import rank_table

MANY_STEPS = 100000


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("signals")
    shard = write_mindrecord(root / "data", "train", write_scenes(root / "data", [40] * 8))
    return write_tiny_config(root / "tiny.yaml", shard, 2, MANY_STEPS)


def launcher_command(launcher: str, config: Path, work_dir: Path, *args: str) -> tuple:
    """The command and extra environment of a 2-rank launch."""
    if launcher == "mpirun":
        return [SCRIPTS / "run_mpirun.sh", 2, config, "--work-dir", work_dir, *args], {}
    if launcher == "msrun":
        return [SCRIPTS / "run_msrun.sh", 2, config, "--work-dir", work_dir, *args], {}
    table = rank_table.write(work_dir.parent / "rank_table_2p.json",
                             rank_table.build({0: "192.168.100.101", 1: "192.168.100.102"}, "127.0.0.1"))
    return [SCRIPTS / "ascend8p.sh", table, config, "--work-dir", work_dir, *args], {"DEVICE_TARGET": "CPU"}


def alive(pids: List[int]) -> List[int]:
    """The pids that still run (zombies count as gone)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


def interrupt(cmd: list, env: dict, work_dir: Path, signum: int, to_group: bool, output: Path) -> int:
    """Start ``cmd``, signal it after step 3; returns its exit status once no process of the job is left."""
    with output.open("w") as sink:
        proc = subprocess.Popen(limited(cmd, 300), cwd=REPO, env=launch_env(env), stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_text(work_dir / "train.log", "step 3/", proc, 200)
            job = descendants(proc.pid)
            (os.killpg if to_group else os.kill)(proc.pid, signum)
            status = proc.wait(timeout=150)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(job) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(job), (alive(job), output.read_text()[-3000:])
    return status


@pytest.mark.parametrize("launcher, signum, to_group", [
    ("mpirun", signal.SIGINT, True), ("mpirun", signal.SIGTERM, False), ("msrun", signal.SIGINT, True),
    ("ascend8p", signal.SIGINT, True)])
def test_a_stop_signal_stops_every_rank_and_resume_continues(config, tmp_path, launcher, signum, to_group):
    work = tmp_path / "work"
    cmd, env = launcher_command(launcher, config, work)
    status = interrupt(cmd, env, work, signum, to_group, tmp_path / "output.txt")
    log = (work / "train.log").read_text()
    assert status == 128 + signum, (status, (tmp_path / "output.txt").read_text()[-3000:])
    # (a launcher may pass a Ctrl-C on to its ranks as SIGTERM, so either name may show)
    assert "interrupted by SIG" in log and log.count(" INFO saved ") == 1, log[-2000:]
    stopped = int(last_checkpoint(work).stem.split("_")[1])
    assert stopped >= 3 and "Traceback" not in (tmp_path / "output.txt").read_text()

    end = stopped + 2
    cmd, env = launcher_command(launcher, config, work, "--resume", "--set", f"train.max_steps={end}")
    resumed = run_launch(cmd, 240, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    if launcher == "mpirun" and signum == signal.SIGINT:  # one uninterrupted run to compare with is enough
        cmd, env = launcher_command(launcher, config, tmp_path / "straight", "--set", f"train.max_steps={end}")
        straight = run_launch(cmd, 240, env)
        assert straight.returncode == 0, straight.stdout[-3000:]
        assert max_abs_diff(network_params(last_checkpoint(work)),
                            network_params(last_checkpoint(tmp_path / "straight"))) == 0.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_evaluation_and_prediction_stop_cleanly(tmp_path, signum):
    """tools/eval.py on a long list: a stop signal mid-way says "interrupted", writes no results, exits 128 + the
    signal; tools/predict.py the same (SIGINT is sent to the process alone, while MindSpore runs a graph)."""
    data = tmp_path / "data"
    lines = write_scenes(data, [40, 37, 45])
    eval_list = data / "val.txt"
    eval_list.write_text("".join(f"{line}\n" for line in lines * 300), encoding="utf-8")
    config = write_tiny_config(tmp_path / "tiny.yaml", write_mindrecord(data, "train", lines), 2, 1)
    done = run_launch([SCRIPTS / "run_standalone.sh", config, "--work-dir", tmp_path / "work"], 120)
    assert done.returncode == 0, done.stdout[-3000:]
    checkpoint = last_checkpoint(tmp_path / "work")
    name = signal.Signals(signum).name
    cmd = [sys.executable, REPO / "tools" / "eval.py", "--config", config, "--checkpoint", checkpoint, "--set",
           f"data.eval.list={eval_list}", "eval.crop_size=33", "--out", tmp_path / "results.json"]
    status, rest = signal_when(list(map(str, cmd)), "evaluating 900 of 900 images", signum)
    assert status == 128 + signum, rest[-3000:]
    assert f"interrupted ({name})" in rest and "Traceback" not in rest
    assert not (tmp_path / "results.json").exists()
    if signum != signal.SIGINT:
        return
    images = data / "images.txt"
    images.write_text("".join(f"{data / line.split()[0]}\n" for line in lines * 3000), encoding="utf-8")
    cmd = [sys.executable, REPO / "tools" / "predict.py", "--config", config, "--checkpoint", checkpoint, "--input",
           images, "--out-dir", tmp_path / "masks"]
    status, rest = signal_when(list(map(str, cmd)), "predict: ", signum)
    assert status == 128 + signum, rest[-3000:]
    assert f"interrupted ({name})" in rest and "Traceback" not in rest


def test_a_rank_that_hangs_under_msrun_is_reported_not_a_traceback(config, tmp_path):
    """Rank 1 stopped (SIGSTOP) mid-training: rank 0's collective times out and says so in one paragraph; the
    scheduler names the worker it lost; the job ends within distributed.timeout plus a margin."""
    cmd = [SCRIPTS / "run_msrun.sh", 2, config, "--work-dir", tmp_path / "work", "--set", "distributed.timeout=15"]
    output = tmp_path / "output.txt"
    with output.open("w") as sink:
        proc = subprocess.Popen(limited(cmd, 200), cwd=REPO, env=launch_env({}), stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_text(output, "step 2/", proc, 150)
            hung = find_rank_process(proc.pid, "MS_NODE_ID", "1")
            os.kill(hung, signal.SIGSTOP)
            stopped = time.monotonic()
            status = proc.wait(timeout=150)
            elapsed = time.monotonic() - stopped
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):  # msrun may have ended it already
                os.kill(hung, signal.SIGKILL)
    text = output.read_text()
    assert status != 0 and elapsed < 15 + 60, (status, elapsed, text[-3000:])
    assert "error: rank 0: the AllReduce across the job's 2 ranks failed" in text, text[-3000:]
    assert "a peer rank is dead or hung" in text and "continue with --resume" in text
    assert "msrun's scheduler: mindspore.communication.init() failed: worker(s) 1 of 2 stopped responding" in text
    assert "Traceback" not in text and "never started" not in text, text[-3000:]


def test_a_killed_rank_of_a_cpu_rank_table_launch_leaves_no_scheduler_behind(config, tmp_path):
    """ascend8p.sh on CPU: rank 1 SIGKILLed mid-training; rank 0's MindSpore scheduler ends with the job."""
    work = tmp_path / "work"
    cmd, env = launcher_command("ascend8p", config, work)
    with (tmp_path / "output.txt").open("w") as sink:
        proc = subprocess.Popen(limited(cmd, 200), cwd=REPO, env=launch_env(env), stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_text(work / "train.log", "step 3/", proc, 150)
            job = descendants(proc.pid)
            os.kill(find_rank_process(proc.pid, "RANK_ID", "1"), signal.SIGKILL)
            status = proc.wait(timeout=150)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    ended = time.monotonic()
    while alive(job) and time.monotonic() < ended + 3:
        time.sleep(0.2)
    survivors = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in alive(job)]
    assert status == 1 and not survivors, (status, survivors)
