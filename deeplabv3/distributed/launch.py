"""How this process was started: the launcher, its rank and the backend the ranks will talk through.

Read from the environment alone, before any communication and without importing MindSpore:

=============  ===========================  ==================================================================
launcher       detected by                  communication
=============  ===========================  ==================================================================
msrun          ``MS_ROLE``                  ``mindspore.communication.init()`` (dynamic cluster)
mpirun         ``OMPI_COMM_WORLD_SIZE``     Ascend/GPU: ``init()``. CPU: mpi4py (``backend: auto``), or with
                                            ``backend: mindspore`` the dynamic-cluster bridge: rank 0 starts a
                                            MindSpore scheduler on a free port, every rank joins as a worker
rank table     ``RANK_TABLE_FILE``          Ascend: ``init()`` (HCCL). CPU: the bridge, on the port the launcher
                                            exports as ``MS_SCHED_PORT`` (``scripts/ascend8p.sh`` does)
single         none of these                nothing
=============  ===========================  ==================================================================

``RANK_SIZE`` > 1 without a launcher is an error: without ``init()`` MindSpore quietly reports ``RANK_ID`` as the
rank and the job would train N unsynchronised copies. A rank table is checked against ``RANK_SIZE`` here, since
HCCL reports a mismatch only obscurely, deep inside ``init()``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from ..config import Config
from ..errors import UserError
from . import rank_table


class DistributedError(UserError):
    """The launch cannot work as configured (missing launcher variables, busy port, cluster that did not form)."""


@dataclass(frozen=True)
class Launch:
    """How this process was started, read from the environment before any communication."""

    launcher: str  # "single" | "msrun" | "mpirun" | "rank_table"
    rank: int
    world_size: int
    local_rank: int = 0
    role: str = "worker"  # "scheduler" for msrun's scheduler process


def int_env(env: Mapping[str, str], name: str, default: Optional[int] = None) -> int:
    """The integer variable ``name`` of ``env``; ``default`` if unset (an error if there is no default)."""
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise DistributedError(f"environment variable {name} is not set; the launch needs it")
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def detect_launch(env: Mapping[str, str] = os.environ) -> Launch:
    """The launcher and this process's rank, from the variables msrun, mpirun or a rank-table launch set."""
    if env.get("MS_ROLE"):
        role = env["MS_ROLE"]
        if role not in ("MS_WORKER", "MS_SCHED"):
            raise DistributedError(f"MS_ROLE={role!r}: only msrun's MS_WORKER and MS_SCHED roles are supported")
        world = int_env(env, "MS_WORKER_NUM")
        rank = int_env(env, "MS_NODE_ID", int_env(env, "RANK_ID", 0))
        return Launch("msrun", rank, world, int_env(env, "DEVICE_ID", rank),
                      "scheduler" if role == "MS_SCHED" else "worker")
    if env.get("OMPI_COMM_WORLD_SIZE"):
        rank = int_env(env, "OMPI_COMM_WORLD_RANK")
        return Launch("mpirun", rank, int_env(env, "OMPI_COMM_WORLD_SIZE"),
                      int_env(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0))
    if env.get("RANK_TABLE_FILE"):
        world, rank = int_env(env, "RANK_SIZE"), int_env(env, "RANK_ID")
        if not 0 <= rank < world:
            raise DistributedError(f"RANK_ID={rank} is not in [0, RANK_SIZE={world})")
        return Launch("rank_table", rank, world, int_env(env, "DEVICE_ID", rank))
    rank_size = int_env(env, "RANK_SIZE", 1)
    if rank_size > 1:
        raise DistributedError(
            f"RANK_SIZE={rank_size} is set but no launcher was found (no MS_ROLE from msrun, OMPI_COMM_WORLD_SIZE "
            f"from mpirun, or RANK_TABLE_FILE); this process would train an unsynchronised copy. Launch with "
            f"scripts/run_msrun.sh, scripts/run_mpirun.sh or scripts/ascend8p.sh, or unset RANK_SIZE")
    return Launch("single", 0, 1)


def resolve_backend(cfg: Config, launch: Launch) -> str:
    """``none`` (one process), ``mindspore`` (MindSpore collectives) or ``mpi4py`` (host all-reduce)."""
    wanted, device = cfg.distributed.backend, cfg.runtime.device_target
    if launch.world_size == 1 and launch.launcher != "msrun":
        return "none"
    if launch.launcher == "mpirun":
        if wanted == "auto":
            return "mpi4py" if device == "CPU" else "mindspore"
        return wanted
    if wanted == "mpi4py":
        raise DistributedError(f"distributed.backend=mpi4py needs an mpirun launch, but this process was started "
                               f"by {launch.launcher}; use scripts/run_mpirun.sh or distributed.backend=auto")
    if launch.launcher == "rank_table" and device == "GPU":
        raise DistributedError("a rank table (RANK_TABLE_FILE) describes Ascend devices; on GPU launch with "
                               "scripts/run_msrun.sh or scripts/run_mpirun.sh")
    return "mindspore"


def check_rank_table(launch: Launch, path: str) -> None:
    """A valid table whose rank count is the launch's ``RANK_SIZE`` (HCCL would fail obscurely otherwise)."""
    entries = rank_table.validate(rank_table.load(path))
    if len(entries) != launch.world_size:
        raise DistributedError(f"RANK_SIZE={launch.world_size} but the rank table {path} lists {len(entries)} "
                               f"rank(s); export RANK_SIZE={len(entries)} or use a table for {launch.world_size}")



def peer_failure(rank: int, what: str, detail: str) -> DistributedError:
    """A collective of this rank failed: another rank died, hangs or skipped it, so the operation timed out.

    This rank cannot tell which of the others is missing; msrun's scheduler (``scheduler.log``, the launcher's
    output) names the worker it lost.
    """
    return DistributedError(
        f"rank {rank}: {what} failed ({detail}); a peer rank is dead or hung, or did not take part within "
        f"MS_CPU_COMM_OP_TIMEOUT={os.environ.get('MS_CPU_COMM_OP_TIMEOUT')} s. The ranks' logs and the launcher's "
        f"output say which (msrun's scheduler names the worker it lost); once every rank runs, continue with "
        f"--resume, or raise distributed.timeout if a rank is only slow")


_FAILED_KERNEL = re.compile(r"Launch kernel failed: \S*?(AllReduce|AllGather|Broadcast|ReduceScatter|Barrier|"
                            r"Send|Receive)\S*")


def failed_collective(exc: BaseException, env: Mapping[str, str] = os.environ) -> Optional[DistributedError]:
    """:func:`peer_failure` for a collective inside a compiled graph (the training step's gradient all-reduce),
    which MindSpore reports as a kernel traceback; ``None`` for any other error or outside a distributed job."""
    match = _FAILED_KERNEL.search(str(exc)) if isinstance(exc, RuntimeError) else None
    if match is None:
        return None
    try:
        launch = detect_launch(env)
    except DistributedError:
        return None
    if launch.world_size < 2:
        return None
    return peer_failure(launch.rank, f"the {match.group(1)} across the job's {launch.world_size} ranks",
                        match.group(0))
