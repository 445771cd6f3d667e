"""The collectives of a real 2-process job per backend, and how jobs fail: a hung rank, a busy port."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from distributed_helpers import SCRIPTS, run_launch

# Run by scripts/run_mpirun.sh as its TOOL: every collective of DistContext, the results printed as JSON.
PROBE = '''
import argparse, json, os, signal
import numpy as np
from deeplabv3.config import load_config
from deeplabv3.distributed import init_distributed

parser = argparse.ArgumentParser()
parser.add_argument("--config")
parser.add_argument("--set", nargs="*", default=[])
parser.add_argument("--stop-rank", type=int, default=-1)
args = parser.parse_args()
ctx = init_distributed(load_config(args.config, args.set))
import mindspore as ms
r = ctx.rank
if r == args.stop_rank:
    os.kill(os.getpid(), signal.SIGSTOP)  # a hung rank: alive, never taking part again
grads = (ms.Tensor(np.full((2,), r + 1.0, np.float32)), ms.Tensor(np.full((1, 3), 4.0 * r, np.float32)))
result = {
    "rank": r, "world_size": ctx.world_size, "backend": ctx.backend, "launcher": ctx.launcher,
    "int64": ctx.allreduce_sum(np.array([[2**40 + r, -(r + 1)], [2**61, 7]], np.int64)).tolist(),
    "float64": ctx.allreduce_sum(np.array([0.1 * (r + 1), 1e-300], np.float64)).tolist(),
    "float32": ctx.allreduce_sum(np.array([1.5 * (r + 1)], np.float32)).tolist(),
    "bool": ctx.allreduce_sum(np.array([r == 0, True])).tolist(),
    "broadcast": ctx.broadcast({"from": r, "payload": "x" * (1000 * r + 3)}),
    "grads": [g.asnumpy().tolist() for g in ctx.grad_reducer(grads)],
}
print("RESULT " + json.dumps(result), flush=True)
ctx.finalize()
'''


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(PROBE, encoding="utf-8")
    return path


def _config(tmp_path: Path, *overrides: str) -> list:
    path = tmp_path / "probe.yaml"
    path.write_text(f"runtime: {{work_dir: {tmp_path / 'work'}}}\n", encoding="utf-8")
    return [str(path), *(["--set", *overrides] if overrides else [])]


def _results(output: str) -> dict:
    found = [json.loads(line.split("RESULT ", 1)[1]) for line in output.splitlines() if "RESULT " in line]
    return {r["rank"]: r for r in found}


@pytest.mark.parametrize("backend", ["mpi4py", "mindspore"])
def test_every_collective_sums_exactly_on_every_rank(tmp_path, probe, backend):
    done = run_launch([SCRIPTS / "run_mpirun.sh", 2, *_config(tmp_path, f"distributed.backend={backend}")], 150,
                      env={"TOOL": str(probe)})
    assert done.returncode == 0, done.stdout[-4000:]
    results = _results(done.stdout)
    assert sorted(results) == [0, 1]
    for rank, result in results.items():
        assert (result["world_size"], result["backend"], result["launcher"]) == (2, backend, "mpirun")
        assert result["int64"] == [[2**41 + 1, -3], [2**62, 14]]  # exact beyond float precision, negatives kept
        assert result["float64"] == [0.1 + 0.2, 2e-300]
        assert result["float32"] == [4.5]
        assert result["bool"] == [1, 2]
        assert result["broadcast"] == {"from": 0, "payload": "xxx"}
        assert result["grads"] == [[1.5, 1.5], [[2.0, 2.0, 2.0]]]  # the mean of ranks 0 and 1


def test_a_hung_rank_ends_the_job_naming_it(tmp_path, probe):
    start = time.monotonic()
    done = run_launch([SCRIPTS / "run_mpirun.sh", 2, *_config(tmp_path, "distributed.timeout=3"), "--stop-rank", 1],
                      90, env={"TOOL": str(probe)})
    elapsed = time.monotonic() - start
    assert done.returncode not in (0, 124, 137), done.stdout[-3000:]  # ended by the job itself, not the time limit
    assert "rank(s) 1 did not join collective #" in done.stdout and "within distributed.timeout=3 s" in done.stdout
    assert elapsed < 60
    assert "RESULT" not in done.stdout


def test_busy_scheduler_port_is_a_clear_error(tmp_path):
    """tools/train.py under mpirun (MindSpore backend: rank 0 starts the scheduler) and run_msrun.sh."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        bridge = run_launch([SCRIPTS / "run_mpirun.sh", 2, *_config(tmp_path, "distributed.backend=mindspore")], 90,
                            env={"MS_SCHED_PORT": str(port)})
        msrun = run_launch([SCRIPTS / "run_msrun.sh", 2, *_config(tmp_path)], 60, env={"MASTER_PORT": str(port)})
    for done in (bridge, msrun):
        text = " ".join(done.stdout.split())
        assert done.returncode != 0 and f"port {port} on 127.0.0.1" in text and "is already in use" in text, text
        assert "Traceback" not in done.stdout
    assert msrun.returncode == 2
