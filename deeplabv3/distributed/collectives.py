"""Host-side collectives over every rank of a job: sums, broadcasts and barriers of host values.

:class:`~deeplabv3.distributed.context.DistContext` reduces metrics, log figures and checks through these; the
gradients have their own path (:mod:`deeplabv3.distributed.gradients`).

A job fails in bounded time. A rank that hangs fails its peers' next collective after ``distributed.timeout``
seconds: with mpi4py every collective first checks that all ranks arrived and aborts the job naming the missing
ranks; with MindSpore the collective itself times out after ``MS_CPU_COMM_OP_TIMEOUT``. A rank that dies or exits
with an error makes the launcher stop the others (mpirun names the rank; MPI is finalised only by
:meth:`DistContext.finalize <deeplabv3.distributed.context.DistContext.finalize>`, so an erroring rank does not
wait for its peers first).
"""
from __future__ import annotations

import pickle
import sys
import time
from typing import Any, Callable, Dict

import mindspore as ms
import numpy as np
from mindspore import ops
from mindspore.communication import get_rank

from .launch import peer_failure


def mpi() -> Any:
    """mpi4py's ``MPI``, imported so that only :meth:`DistContext.finalize` finalises MPI.

    mpi4py would otherwise finalise at interpreter exit, and OpenMPI's finalise waits for every rank: a rank
    leaving with an error would then sit there until its peers time out, instead of making mpirun end the job.
    """
    import mpi4py

    mpi4py.rc.finalize = False
    from mpi4py import MPI

    return MPI


class Collectives:
    """Host-side collectives over all ranks; subclasses implement the transport."""

    def allreduce_sum(self, array: np.ndarray, what: str = "all-reduce") -> np.ndarray:
        return np.array(array, copy=True)

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def barrier(self, what: str = "barrier") -> None:
        """Nothing to wait for."""

    def finalize(self) -> None:
        """Nothing to release."""


class MpiCollectives(Collectives):
    """mpi4py collectives, each preceded by an arrival check so a dead or hung rank is named after ``timeout``."""

    _ARRIVAL_TAG = 7

    def __init__(self, timeout: float) -> None:
        MPI = mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.probe = self.comm.Dup()
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = timeout
        self.count = 0

    def arrive(self, what: str) -> None:
        """Return once every rank has reached this collective; abort the job naming the ranks that did not."""
        self.count += 1
        peers = [p for p in range(self.world_size) if p != self.rank]
        token = np.array([self.count], np.int64)
        got = np.zeros(len(peers), np.int64)
        sends = [self.probe.Isend(token, dest=p, tag=self._ARRIVAL_TAG) for p in peers]
        recvs = [self.probe.Irecv(got[i:i + 1], source=p, tag=self._ARRIVAL_TAG) for i, p in enumerate(peers)]
        deadline, pause = time.monotonic() + self.timeout, 1e-4
        while True:
            arrived = [r.Test() for r in recvs]
            if all(arrived):
                break
            if time.monotonic() > deadline:
                missing = [p for p, ok in zip(peers, arrived) if not ok]
                self.abort(f"rank(s) {', '.join(map(str, missing))} did not join collective #{self.count} ({what}) "
                           f"within distributed.timeout={self.timeout:g} s: dead or hung. (Work that only rank 0 "
                           f"does for longer than that, e.g. a slow disk, also trips it: raise distributed.timeout.)")
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        self.MPI.Request.Waitall(sends)

    def abort(self, message: str) -> None:
        print(f"error: rank {self.rank}: {message} Ending the job.", file=sys.stderr, flush=True)
        self.comm.Abort(1)

    def allreduce_inplace(self, buffer: np.ndarray, what: str) -> None:
        self.arrive(what)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

    def allreduce_sum(self, array: np.ndarray, what: str = "all-reduce") -> np.ndarray:
        buffer = np.array(array, copy=True, order="C")
        if buffer.dtype == np.float16:  # no MPI type: sum in float32
            return self.allreduce_sum(buffer.astype(np.float32), what).astype(np.float16)
        if buffer.dtype == np.bool_:
            buffer = buffer.astype(np.int64)
        self.allreduce_inplace(buffer, what)
        return buffer

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        self.arrive(f"a broadcast from rank {root}")
        return self.comm.bcast(obj, root=root)

    def barrier(self, what: str = "barrier") -> None:
        self.arrive(what)

    def finalize(self) -> None:
        self.probe.Free()


class MindSporeCollectives(Collectives):
    """MindSpore collectives (``mccl`` on CPU, HCCL/NCCL on devices); a hung peer fails after the op timeout.

    On CPU, ``AllReduce`` only sums float16/float32, so other dtypes are summed exactly from an ``AllGather`` of
    their bytes, in rank order (the same result on every rank).
    """

    def __init__(self) -> None:
        self.rank = get_rank()
        self._allreduce = ops.AllReduce()
        self._allgather = ops.AllGather()
        self._broadcasts: Dict[int, Any] = {}

    def _run(self, what: str, op: Callable[..., Any], *inputs: Any) -> np.ndarray:
        try:
            out = op(*inputs)
            return (out[0] if isinstance(out, tuple) else out).asnumpy()
        except RuntimeError as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise peer_failure(self.rank, what, first) from None

    def allreduce_sum(self, array: np.ndarray, what: str = "all-reduce") -> np.ndarray:
        array = np.ascontiguousarray(array)
        if array.dtype in (np.float32, np.float16):
            return self._run(what, self._allreduce, ms.Tensor(array))
        if array.dtype == np.bool_:
            array = array.astype(np.int64)
        raw = array.tobytes()
        words = np.frombuffer(raw + b"\0" * (-len(raw) % 4 + 4), np.int32).reshape(1, -1)  # never empty
        gathered = self._run(what, self._allgather, ms.Tensor(words))
        parts = [np.frombuffer(row.tobytes()[:len(raw)], array.dtype).reshape(array.shape) for row in gathered]
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        return total

    def _broadcast_array(self, array: np.ndarray, root: int) -> np.ndarray:
        if root not in self._broadcasts:
            self._broadcasts[root] = ops.Broadcast(root)
        return self._run(f"a broadcast from rank {root}", self._broadcasts[root], (ms.Tensor(array),))

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        payload = pickle.dumps(obj) if self.rank == root else b""
        size = int(self._broadcast_array(np.array([len(payload)], np.int32), root)[0])
        words = np.zeros((size + 3) // 4, np.int32)
        if payload:
            words.view(np.uint8)[:size] = np.frombuffer(payload, np.uint8)
        received = self._broadcast_array(words, root)
        return pickle.loads(received.view(np.uint8)[:size].tobytes())

    def barrier(self, what: str = "barrier") -> None:
        self.allreduce_sum(np.ones(1, np.float32), what)
