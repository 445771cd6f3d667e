"""How the ranks form MindSpore's communication cluster: device binding, ``init()``, msrun and the CPU bridge.

Devices (Ascend, GPU) and msrun initialise with ``mindspore.communication.init()`` alone. msrun runs a copy of the
script as its scheduler, which stops inside ``init()`` once it has served the job; its port is checked first, and
its workers wait until it listens (workers that call ``init()`` earlier retry their registration for about a
minute).

On CPU, plain mpirun and rank-table launches cannot ``init()`` by themselves: the dynamic-cluster bridge makes rank
0 start a MindSpore scheduler process (:func:`run_scheduler`) on ``MS_SCHED_PORT`` if exported, else under mpirun
on a free port shared through MPI, and every rank joins it as a worker. A scheduler port that is taken is reported
before anything starts; a scheduler that dies before the cluster has formed ends rank 0 with its log's last lines;
a scheduler whose rank 0 has gone exits after a grace period instead of outliving the job.

Cluster formation is bounded by ``MS_TOPO_TIMEOUT`` and each collective by ``MS_CPU_COMM_OP_TIMEOUT``, both
``distributed.timeout`` unless the launcher or the user set them.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Tuple

import mindspore as ms
from mindspore.communication import get_group_size, get_rank, init

from ..config import Config
from ..errors import UserError
from ..interrupts import release_sigint
from .collectives import mpi
from .launch import DistributedError, Launch, int_env
from .ports import check_port_free, free_port

SCHEDULER_LOG = "scheduler.log"
_SCHED_PARENT_ENV = "DEEPLABV3_SCHEDULER_PARENT"
_SCHED_GRACE_ENV = "DEEPLABV3_SCHEDULER_GRACE"
_LAUNCHER_VARS = ("OMPI_", "PMIX_", "RANK_TABLE_FILE")
_TIMED_OUT_NODES = re.compile(r"Timed out node list is: [^{]*\{([0-9, ]+)\}")
NODE_RANK_ENV = "DEEPLABV3_NODE_RANK"  # scripts/run_msrun.sh's NODE_RANK, seen by msrun's scheduler
NODES_ENV = "DEEPLABV3_NODES"  # scripts/run_msrun.sh's NODES


def join_cluster(cfg: Config, launch: Launch, timeout: int) -> None:
    """Bring this process into the job's MindSpore cluster (the ``mindspore`` backend); under msrun the scheduler
    process never returns."""
    _apply_timeouts(timeout)
    if launch.launcher == "msrun" or cfg.runtime.device_target != "CPU":
        if launch.launcher == "msrun":
            _msrun_rendezvous(launch, timeout)
        _set_device(cfg, launch)
        _mindspore_init(launch, "mindspore.communication.init()")
    else:
        _join_bridge(cfg, launch, timeout)


def _apply_timeouts(timeout: int) -> None:
    """Collective and cluster-formation timeouts of MindSpore, unless the launcher or the user set them."""
    os.environ.setdefault("MS_CPU_COMM_OP_TIMEOUT", str(timeout))
    os.environ.setdefault("MS_TOPO_TIMEOUT", str(timeout))


def _set_device(cfg: Config, launch: Launch) -> None:
    """Bind the device before ``init()`` (MindSpore refuses to change it afterwards)."""
    target = cfg.runtime.device_target
    if target == "CPU":
        ms.set_device(target)
        return
    device_id = cfg.runtime.device_id
    if device_id is None:
        device_id = int_env(os.environ, "DEVICE_ID", launch.local_rank)
    ms.set_device(target, device_id)


def _mindspore_init(launch: Launch, what: str) -> None:
    if launch.role == "scheduler":  # it waits inside init() for the whole job: a stop signal must end it there
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        release_sigint()
    try:
        init()
    except RuntimeError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), str(exc))
        missing, lost = "", _TIMED_OUT_NODES.search(str(exc))
        if lost:  # the cluster had formed: MindSpore lists the workers whose heartbeat stopped
            first = (f"worker(s) {lost.group(1)} of {launch.world_size} stopped responding during the job (died or "
                     f"hang); see worker_<rank>.log of each")
        elif launch.launcher == "msrun":
            missing = (f"; not all {launch.world_size} workers of the job joined in time: a rank or a node never "
                       f"started{_other_nodes(launch.world_size)} (several hosts: run scripts/run_msrun.sh on each, "
                       f"with the same NODES, MASTER_ADDR and MASTER_PORT and NODE_RANK 0 .. NODES-1)")
        who = "msrun's scheduler" if launch.role == "scheduler" else f"rank {launch.rank}"
        raise DistributedError(f"{who}: {what} failed: {first} (timeout: MS_TOPO_TIMEOUT="
                               f"{os.environ.get('MS_TOPO_TIMEOUT')} s){missing}") from None
    if launch.role == "scheduler":
        sys.exit(0)  # msrun's scheduler has served the whole job by the time init() returns
    if launch.launcher != "msrun" and (get_rank(), get_group_size()) != (launch.rank, launch.world_size):
        raise DistributedError(f"MindSpore assigned rank {get_rank()}/{get_group_size()} to the process the "
                               f"launcher started as rank {launch.rank}/{launch.world_size}")


def _other_nodes(world_size: int) -> str:
    """Which ranks the other hosts of a multi-node msrun job should have brought (node r runs ranks r*N ..
    r*N+N-1); their absence is the usual reason a cluster does not form. Empty on one host."""
    nodes, node = int_env(os.environ, NODES_ENV, 1), int_env(os.environ, NODE_RANK_ENV, 0)
    if nodes < 2 or world_size % nodes:
        return ""
    per = world_size // nodes
    others = ", ".join(f"NODE_RANK {r} (ranks {r * per}..{r * per + per - 1})" for r in range(nodes) if r != node)
    return (f": this host, NODE_RANK {node}, runs ranks {node * per}..{node * per + per - 1}; if its workers' logs "
            f"show no error, the missing ones are of {others}")


def run_scheduler() -> None:
    """Entry point of the bridge's scheduler process (``MS_ROLE=MS_SCHED`` in its environment).

    It serves the cluster until every worker has finished. Should rank 0, its parent, disappear, it exits after a
    grace period instead of outliving the job.
    """
    release_sigint()  # rank 0, its parent, routes SIGINT through a thread; that mask is inherited
    parent, grace = int(os.environ[_SCHED_PARENT_ENV]), float(os.environ[_SCHED_GRACE_ENV])

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    init()


def _start_scheduler(host: str, port: int, world_size: int, timeout: int, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_VARS)}
    env.update(MS_ROLE="MS_SCHED", MS_SCHED_HOST=host, MS_SCHED_PORT=str(port), MS_WORKER_NUM=str(world_size),
               MS_TOPO_TIMEOUT=str(timeout), **{_SCHED_PARENT_ENV: str(os.getpid()),
                                                _SCHED_GRACE_ENV: str(min(timeout, 10))})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        return subprocess.Popen([sys.executable, "-c", "from deeplabv3.distributed.cluster import run_scheduler; "
                                 "run_scheduler()"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _watch_scheduler(proc: subprocess.Popen, log_path: Path, done: threading.Event) -> None:
    """End rank 0 with the scheduler's own error if the scheduler dies before the cluster has formed."""
    while not done.wait(0.5):
        code = proc.poll()
        if code is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            print(f"error: rank 0: the MindSpore scheduler exited with status {code} before the cluster formed; "
                  f"its log {log_path} ends with:\n  " + "\n  ".join(tail), file=sys.stderr, flush=True)
            os._exit(1)


def _wait_for_listener(host: str, port: int, timeout: float, scheduler: Optional[subprocess.Popen] = None) -> None:
    """Block until the scheduler accepts connections.

    Workers must not call ``init()`` before that: those that do, retry their registration for about a minute.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            pass
        if scheduler is not None and scheduler.poll() is not None:
            raise DistributedError(f"the MindSpore scheduler exited with status {scheduler.returncode} before "
                                   f"listening on {host}:{port}; see its log")
        if time.monotonic() > deadline:
            raise DistributedError(f"no MindSpore scheduler listens on {host}:{port} after {timeout:g} s; rank 0 "
                                   f"starts it: check that rank 0 runs and uses the same MS_SCHED_HOST/MS_SCHED_PORT")
        time.sleep(0.1)


def _msrun_rendezvous(launch: Launch, timeout: int) -> None:
    """msrun's scheduler checks its port is free; its workers wait until it listens before ``init()``."""
    host, port = os.environ.get("MS_SCHED_HOST", "127.0.0.1"), int_env(os.environ, "MS_SCHED_PORT")
    if launch.role == "scheduler" and int_env(os.environ, NODE_RANK_ENV, 0) > 0:
        # msrun starts a scheduler on every host that owns MASTER_ADDR -- on each "node" when several share one
        # host. Node 0's serves the job.
        sys.exit(0)
    if launch.role == "scheduler":
        check_port_free(host, port, "msrun --master_port")
    else:
        _wait_for_listener(host, port, timeout)


def _start_bridge_scheduler(cfg: Config, host: str, port: Optional[int], world_size: int,
                            timeout: int) -> Tuple[int, subprocess.Popen]:
    """Rank 0's part: a free (or the exported) port, the scheduler on it, listening."""
    if port is None:
        port = free_port(host)
    check_port_free(host, port, "MS_SCHED_PORT" if os.environ.get("MS_SCHED_PORT") else "a free port")
    log_path = Path(cfg.runtime.work_dir) / SCHEDULER_LOG
    scheduler = _start_scheduler(host, port, world_size, timeout, log_path)
    _wait_for_listener(host, port, timeout, scheduler)
    return port, scheduler


def _join_bridge(cfg: Config, launch: Launch, timeout: int) -> None:
    """The dynamic-cluster bridge for CPU launches MindSpore cannot initialise by itself: rank 0 starts a scheduler
    (on ``MS_SCHED_PORT`` if exported, else under mpirun on a free port shared with mpi4py), every rank joins as
    worker ``MS_NODE_ID=rank``."""
    host = os.environ.get("MS_SCHED_HOST", "127.0.0.1")
    port = int_env(os.environ, "MS_SCHED_PORT") if os.environ.get("MS_SCHED_PORT") else None
    scheduler, problem = None, None
    if launch.launcher == "mpirun":
        if launch.rank == 0:
            try:
                port, scheduler = _start_bridge_scheduler(cfg, host, port, launch.world_size, timeout)
            except UserError as exc:
                problem = str(exc)
        port, problem = mpi().COMM_WORLD.bcast((port, problem), root=0)
        if problem:
            raise DistributedError(problem)
    elif port is None:
        raise DistributedError(
            "a rank-table launch on CPU joins MindSpore's dynamic cluster, whose scheduler needs a port: export "
            "MS_SCHED_PORT (and MS_SCHED_HOST if not 127.0.0.1) for every rank, as scripts/ascend8p.sh does")
    elif launch.rank == 0:
        port, scheduler = _start_bridge_scheduler(cfg, host, port, launch.world_size, timeout)
    else:
        _wait_for_listener(host, port, timeout)
    done = threading.Event()
    if scheduler is not None:
        log_path = Path(cfg.runtime.work_dir) / SCHEDULER_LOG
        threading.Thread(target=_watch_scheduler, args=(scheduler, log_path, done), daemon=True).start()
    os.environ.update(MS_ROLE="MS_WORKER", MS_NODE_ID=str(launch.rank), MS_WORKER_NUM=str(launch.world_size),
                      MS_SCHED_HOST=host, MS_SCHED_PORT=str(port))
    _set_device(cfg, launch)
    try:
        _mindspore_init(launch, f"joining the MindSpore cluster of scheduler {host}:{port}")
    finally:
        done.set()
