"""This process's place in a job and the calls every rank makes together: :func:`init_distributed` builds it.

:func:`init_distributed` must run before anything else the process does (msrun runs a copy of the script as its
scheduler, which must stop inside ``mindspore.communication.init()``). It detects the launch
(:mod:`~deeplabv3.distributed.launch`), forms the cluster (:mod:`~deeplabv3.distributed.cluster`) or the mpi4py
communicator, and picks the collectives and the gradient reducer of the backend.

After initialisation every rank checks it runs the same config (hence the same seed: MindSpore does not broadcast
initial weights, and ``MindDataset`` shards only partition the data when every rank shuffles with the same seed).
BatchNorm statistics follow each rank's batches (SyncBN exists on Ascend only); the trainer replaces them with
their across-rank mean before every evaluation and save (:mod:`~deeplabv3.distributed.buffers`). Rank 0 alone
writes files.

Failures end the whole job in bounded time: a hung rank fails its peers' next collective after
``distributed.timeout`` seconds (:mod:`~deeplabv3.distributed.collectives`), and a rank that fails just exits,
which makes the launcher stop the others: only the success path calls :meth:`DistContext.finalize`.
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore.communication import get_group_size, get_rank

from ..config import Config, dump_yaml, replace
from ..runtime import get_logger
from .cluster import join_cluster
from .collectives import Collectives, MindSporeCollectives, MpiCollectives
from .gradients import AllReduceMean, HostGradMean, LocalGradients
from .launch import DistributedError, check_rank_table, detect_launch, resolve_backend

SKIP_REDUCTION_ENV = "DEEPLABV3_SKIP_GRAD_REDUCTION"


@dataclass
class DistContext:
    """This process's place in the job and the collectives every rank must call together.

    ``grad_reducer(grads) -> grads`` is the across-rank mean of a gradient tuple: an ``nn.Cell`` (MindSpore
    backend; usable inside or outside a graph), a host callable (mpi4py; outside graphs), or ``None`` for a
    single process. ``DEEPLABV3_SKIP_GRAD_REDUCTION=1`` makes it :class:`LocalGradients` on a multi-rank job,
    which then trains unsynchronised replicas: a diagnostic showing what the reduction does, never a way to train.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "single"
    backend: str = "none"
    grad_reducer: Optional[Callable[[Tuple[Any, ...]], Tuple[Any, ...]]] = None
    collectives: Collectives = field(default_factory=Collectives, repr=False)
    finalized: bool = False

    @property
    def is_main(self) -> bool:
        """The rank that writes files and prints results."""
        return self.rank == 0

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        """Element-wise sum over ranks of a host array (exact for integers: confusion matrices, counts)."""
        return self.collectives.allreduce_sum(np.asarray(array))

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        """``obj`` of rank ``root`` (any picklable value) on every rank."""
        return self.collectives.broadcast(obj, root)

    def barrier(self) -> None:
        """Return once every rank has called it."""
        self.collectives.barrier()

    def ranks_differing(self, digest: str) -> List[int]:
        """The ranks whose ``digest`` differs from rank 0's (the same list on every rank)."""
        differs = np.zeros(self.world_size, np.int64)
        differs[self.rank] = int(self.broadcast(digest) != digest)
        return [int(r) for r in np.flatnonzero(self.allreduce_sum(differs))]

    def check_replicas(self, params: Sequence[ms.Parameter]) -> bool:
        """Whether every rank holds bit-identical ``params`` (the trained weights; BatchNorm statistics differ
        between saves). Logs the outcome, an error naming the ranks that diverged, and returns it."""
        if self.world_size == 1:
            return True
        digest = hashlib.sha256()
        for param in sorted(params, key=lambda p: p.name):
            digest.update(param.name.encode())
            digest.update(param.asnumpy().tobytes())
        ranks = self.ranks_differing(digest.hexdigest())
        if ranks:
            get_logger().error("the trained parameters of rank(s) %s differ from rank 0's: the ranks trained "
                               "unsynchronised copies", ", ".join(map(str, ranks)))
        else:
            get_logger().info("trained parameters identical on all %d ranks (%d tensors, sha256 %s)",
                              self.world_size, len(params), digest.hexdigest()[:16])
        return not ranks

    def finalize(self) -> None:
        """End of the job on this rank: wait for every rank, then release the communication (idempotent).

        Call it on the success path only: a rank that fails must just exit (with mpi4py, a rank that exits
        without finalising makes mpirun stop the whole job at once).
        """
        if self.finalized:
            return
        self.collectives.barrier("the final barrier")
        self.collectives.finalize()
        self.finalized = True
        if "mpi4py.MPI" in sys.modules:
            MPI = sys.modules["mpi4py.MPI"]
            if MPI.Is_initialized() and not MPI.Is_finalized():
                MPI.Finalize()


def config_digest(cfg: Config) -> str:
    """A hash of everything in the config that must agree across ranks (all but the device index)."""
    return hashlib.sha256(dump_yaml(replace(cfg, **{"runtime.device_id": None})).encode()).hexdigest()


def _check_same_config(ctx: DistContext, cfg: Config) -> None:
    ranks = ctx.ranks_differing(config_digest(cfg))
    if ranks:
        raise DistributedError(f"rank(s) {', '.join(map(str, ranks))} run a different config than rank 0 (another "
                               f"--set, config file or seed); every rank must start from the same config")


def init_distributed(cfg: Config) -> DistContext:
    """Initialise communication for the launch found in the environment and return this process's context.

    Call it first: under msrun the scheduler process runs the script up to here and never returns.
    """
    launch = detect_launch()
    if launch.launcher == "rank_table":
        check_rank_table(launch, os.environ["RANK_TABLE_FILE"])
    backend = resolve_backend(cfg, launch)
    timeout = cfg.distributed.timeout
    ctx = DistContext(rank=launch.rank, world_size=launch.world_size, local_rank=launch.local_rank,
                      launcher=launch.launcher, backend=backend)
    if backend == "none":
        return ctx
    if backend == "mpi4py":
        collectives = MpiCollectives(float(timeout))
        ctx.collectives = collectives
        ctx.grad_reducer = HostGradMean(collectives)
    else:
        join_cluster(cfg, launch, timeout)
        ctx.rank, ctx.world_size = get_rank(), get_group_size()
        ctx.collectives = MindSporeCollectives()
        ctx.grad_reducer = AllReduceMean(ctx.world_size)
    if os.environ.get(SKIP_REDUCTION_ENV) == "1":
        ctx.grad_reducer = LocalGradients()
    _check_same_config(ctx, cfg)
    return ctx

