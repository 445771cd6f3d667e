"""tools/train.py and tools/eval.py under every launcher, 2 processes on 127.0.0.1, compared with one process.

Two ranks with per-rank batch B, frozen BatchNorm and no dropout must end with the parameters of one process
training on the global batch of 2B: the reference reads a copy of the MindRecord ordered so that its batch k holds
exactly the samples ranks 0 and 1 read at step k (taken from the pipeline's own sharding). The labels have no
ignore pixels, so the mean of the ranks' mean losses is the global batch's mean loss.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from conftest import REPO, free_port
from distributed_helpers import (SCRIPTS, find_rank_process, last_checkpoint, launch_env, limited, max_abs_diff,
                                 network_params, run_launch, shard_order, wait_for_text, write_mindrecord,
                                 write_scenes, write_tiny_config)
from deeplabv3.distributed import rank_table

BATCH = 2  # per rank
STEPS = 3  # crosses an epoch boundary (8 samples: 2 steps per epoch)
TOLERANCE = 1e-5
IDENTICAL = "trained parameters identical on all 2 ranks"


@dataclass
class Job:
    root: Path
    config: Path
    reference: Dict[str, np.ndarray]


def _losses(work_dir: Path) -> List[float]:
    records = [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["type"] == "train"]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Job:
    root = tmp_path_factory.mktemp("distributed_job")
    data = root / "data"
    lines = write_scenes(data, [40] * 8)
    shard = write_mindrecord(data, "train", lines)
    by_name = {Path(line.split()[0]).name: line for line in lines}
    orders = [shard_order(shard, rank, 2) for rank in range(2)]
    global_order = [name for k in range(len(orders[0]) // BATCH) for order in orders
                    for name in order[k * BATCH:(k + 1) * BATCH]]
    reference_shard = write_mindrecord(data, "global_batches", [by_name[name] for name in global_order])
    reference_config = write_tiny_config(root / "reference.yaml", reference_shard, 2 * BATCH, STEPS)
    done = run_launch([SCRIPTS / "run_standalone.sh", reference_config, "--work-dir", root / "reference"], 180)
    assert done.returncode == 0, done.stdout[-4000:]
    losses = _losses(root / "reference")
    assert len(losses) == STEPS and losses[-1] < losses[0]  # it really trains
    return Job(root, write_tiny_config(root / "tiny.yaml", shard, BATCH, STEPS),
               network_params(last_checkpoint(root / "reference")))


def _graphs(work_dir: Path) -> List[int]:
    """Graphs the train step had compiled at each logged step."""
    records = [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["graphs"] for r in records if r["type"] == "train"]


def _check_compiled_once(work_dir: Path) -> None:
    graphs = _graphs(work_dir)
    assert graphs[0] >= 1 and set(graphs) == {graphs[0]}, graphs


def _check_matches_reference(job: Job, work_dir: Path, output: str) -> None:
    _check_compiled_once(work_dir)
    assert output.count(IDENTICAL) >= 1, output[-4000:]
    trained = network_params(last_checkpoint(work_dir))
    assert max_abs_diff(trained, job.reference) < TOLERANCE
    assert _losses(work_dir)[-1] < _losses(work_dir)[0]


def _two_rank_table(job: Job) -> Path:
    return rank_table.write(job.root / "rank_table_2p.json",
                            rank_table.build({0: "192.168.100.101", 1: "192.168.100.102"}, "127.0.0.1"))


def test_mpirun_ranks_equal_one_process_on_the_global_batch(job):
    work_dir = job.root / "mpirun"
    done = run_launch([SCRIPTS / "run_mpirun.sh", 2, job.config, "--work-dir", work_dir], 180)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "rank(s), split step (host-side reduction" in done.stdout  # the mpi4py backend on CPU
    assert done.stdout.count(IDENTICAL) == 1  # the ranks agree their parameters are bit-identical
    # one console for every rank: rank 0 alone prints INFO lines, the others only warnings and errors
    assert "[rank 0] INFO" in done.stdout and "[rank 1] INFO" not in done.stdout
    _check_matches_reference(job, work_dir, done.stdout)


def test_mpirun_with_accumulation_compiles_once(job):
    """The default CPU path (mpi4py, split step) with accumulation over 24 steps: no graph after the first step."""
    work_dir = job.root / "mpirun_accumulation"
    done = run_launch([SCRIPTS / "run_mpirun.sh", 2, job.config, "--work-dir", work_dir, "--set",
                       "train.max_steps=24", "train.grad_accum_steps=2"], 240)
    assert done.returncode == 0, done.stdout[-4000:]
    assert len(_graphs(work_dir)) == 24 and "compiled the train step again" not in done.stdout
    _check_compiled_once(work_dir)
    assert _losses(work_dir)[-1] < _losses(work_dir)[0]


def test_without_gradient_reduction_the_ranks_diverge(job):
    """The negative control: the same launch with the reduction switched off fails both checks, and the job."""
    work_dir = job.root / "unreduced"
    done = run_launch([SCRIPTS / "run_mpirun.sh", 2, job.config, "--work-dir", work_dir], 180,
                      env={"DEEPLABV3_SKIP_GRAD_REDUCTION": "1"})
    assert done.returncode != 0, done.stdout[-4000:]
    assert "the trained parameters of rank(s) 1 differ from rank 0's" in done.stdout and IDENTICAL not in done.stdout
    assert "error: the ranks ended with different weights" in done.stdout
    assert max_abs_diff(network_params(last_checkpoint(work_dir)), job.reference) > 100 * TOLERANCE


def test_msrun_ranks_equal_one_process_on_the_global_batch(job):
    work_dir = job.root / "msrun"
    done = run_launch([SCRIPTS / "run_msrun.sh", 2, job.config, "--work-dir", work_dir], 240, signal="INT")
    assert done.returncode == 0, done.stdout[-4000:]
    logs = "".join(p.read_text() for p in sorted((work_dir / "msrun_logs").glob("worker_*.log")))
    assert "one graph per step" in logs  # MindSpore's AllReduce inside the step graph
    assert logs.count(IDENTICAL) == 2
    _check_matches_reference(job, work_dir, logs)


def test_rank_table_launch_on_cpu_equals_one_process(job):
    table = _two_rank_table(job)
    work_dir = job.root / "ascend8p"
    done = run_launch([SCRIPTS / "ascend8p.sh", table, job.config, "--work-dir", work_dir], 240,
                      env={"DEVICE_TARGET": "CPU"})
    assert done.returncode == 0, done.stdout[-4000:]
    assert "rank 0 (device 0): 0" in done.stdout and "rank 1 (device 1): 0" in done.stdout
    logs = [(work_dir / "logs" / f"rank_{r}.log").read_text() for r in range(2)]
    assert all(IDENTICAL in log for log in logs)
    _check_matches_reference(job, work_dir, logs[0])


@pytest.mark.parametrize("launcher", ["mpirun", "ascend8p"])
def test_a_killed_rank_ends_the_job_within_a_minute(job, tmp_path, launcher):
    output = tmp_path / "output.txt"
    args = [job.config, "--work-dir", tmp_path / "work", "--set", "train.max_steps=500"]
    if launcher == "mpirun":
        cmd, env, rank_variable = [SCRIPTS / "run_mpirun.sh", 2, *args], {}, "OMPI_COMM_WORLD_RANK"
        named = ["process rank 1", "signal 9"]  # mpirun's report
    else:
        cmd, env, rank_variable = [SCRIPTS / "ascend8p.sh", _two_rank_table(job), *args], {"DEVICE_TARGET": "CPU"}, \
            "RANK_ID"
        named = ["rank 1 exited with status 137; stopping the other ranks", "rank 0 (device 0): ",
                 "stopped after rank 1 failed"]
    with output.open("w") as sink:
        proc = subprocess.Popen(limited(cmd, 180), env=launch_env(env), stdout=sink, stderr=subprocess.STDOUT)
        try:
            progress = tmp_path / "work" / "logs" / "rank_0.log" if launcher == "ascend8p" else output
            wait_for_text(progress, "step 2/500", proc, 120)
            os.kill(find_rank_process(proc.pid, rank_variable, "1"), signal.SIGKILL)
            killed = time.monotonic()
            status = proc.wait(timeout=90)
            elapsed = time.monotonic() - killed
        finally:
            if proc.poll() is None:
                proc.kill()
    text = output.read_text()
    assert status not in (0, 124) and elapsed < 60, (status, elapsed, text[-3000:])
    assert all(phrase in text for phrase in named), text[-3000:]


def test_distributed_evaluation_equals_one_process_on_an_odd_list(job):
    """5 images of different sizes: rank 0 evaluates 3, rank 1 two; the summed confusion matrix is exact."""
    sizes = [40, 37, 45, 33, 51]
    data = job.root / "eval_data"
    eval_list = data / "val.txt"
    eval_list.write_text("".join(f"{line}\n" for line in write_scenes(data, sizes, seed=1)), encoding="utf-8")
    checkpoint = last_checkpoint(job.root / "reference")
    args = ["--checkpoint", checkpoint, "--set", f"data.eval.list={eval_list}", "eval.crop_size=33",
            f"runtime.work_dir={job.root / 'eval_work'}"]  # eval.log goes there, not into the checkout
    single = run_launch([SCRIPTS / "run_standalone.sh", job.config, *args, "--out", job.root / "eval_1.json"], 120,
                        env={"TOOL": "eval"})
    assert single.returncode == 0, single.stdout[-3000:]
    # the MindSpore backend through the dynamic-cluster bridge: int64 matrices are summed exactly via AllGather
    double = run_launch([SCRIPTS / "run_mpirun.sh", 2, job.config, *args, "distributed.backend=mindspore",
                         "--out", job.root / "eval_2.json"], 180, env={"TOOL": "eval"})
    assert double.returncode == 0, double.stdout[-3000:]
    one, two = (json.loads((job.root / f"eval_{n}.json").read_text()) for n in (1, 2))
    assert two["settings"]["world_size"] == 2 and one["settings"]["world_size"] == 1
    assert one["num_images"] == two["num_images"] == 5
    assert np.asarray(one["confusion_matrix"]).sum() == sum(s * s for s in sizes)
    assert np.count_nonzero(one["confusion_matrix"]) > 1
    assert one["confusion_matrix"] == two["confusion_matrix"] and one["mIoU"] == two["mIoU"]


def _msrun_node(job: Job, node_rank: int, port: int, work_dir: Path, *args: str) -> subprocess.Popen:
    """One "host" of a 2-node msrun job on 127.0.0.1: one worker of two; node 0 also runs the scheduler."""
    env = {"NODES": "2", "NODE_RANK": str(node_rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "LOG_DIR": str(work_dir.parent / f"{work_dir.name}_node{node_rank}_logs")}
    return subprocess.Popen(limited([SCRIPTS / "run_msrun.sh", 1, job.config, "--work-dir", work_dir, *args], 240,
                                    "INT"), cwd=REPO, env=launch_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_msrun_nodes_equal_one_process_on_the_global_batch(job):
    work_dir = job.root / "two_nodes"
    port = free_port()
    nodes = [_msrun_node(job, rank, port, work_dir) for rank in range(2)]
    outputs = [node.communicate(timeout=280)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(out[-3000:] for out in outputs)
    logs = "".join(p.read_text() for p in sorted(job.root.glob("two_nodes_node*_logs/worker_*.log")))
    assert "worker_0.log" in outputs[0] and "worker_1.log" in outputs[1]  # node r runs global rank r
    assert logs.count(IDENTICAL) == 2
    _check_matches_reference(job, work_dir, logs)


def test_a_node_that_never_joins_ends_the_job_within_the_timeout(job):
    work_dir = job.root / "lonely_node"
    start = time.monotonic()
    node = _msrun_node(job, 0, free_port(), work_dir, "--set", "distributed.timeout=15")
    output = node.communicate(timeout=280)[0]
    elapsed = time.monotonic() - start
    assert node.returncode != 0 and elapsed < 15 + 60, (node.returncode, elapsed, output[-3000:])
    assert "error: rank 0: mindspore.communication.init() failed" in output, output[-3000:]
    assert "not all 2 workers of the job joined in time: a rank or a node never started" in output
    assert "the missing ones are of NODE_RANK 1 (ranks 1..1)" in output, output[-3000:]
