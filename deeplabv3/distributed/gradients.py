"""Across-rank mean of the gradients, once per training step: in the step graph, or through host memory.

The engine's TrainStep calls ``DistContext.grad_reducer(grads) -> grads`` (see the reducer contract in
:mod:`deeplabv3.engine.train_step`). The MindSpore backend uses :class:`AllReduceMean` (one ``AllReduce`` per
tensor, inside or outside a graph); mpi4py, which graphs cannot call, :class:`HostGradMean` between the backward and
the update graphs. :class:`LocalGradients` is the diagnostic that reduces nothing.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from .collectives import MpiCollectives


def _mean(allreduce: ops.AllReduce, scale: float, grad: ms.Tensor) -> ms.Tensor:
    return allreduce(grad) * scale


class AllReduceMean(nn.Cell):
    """Across-rank mean of a gradient tuple with ``ops.AllReduce``; runs inside the step graph or on its own."""

    def __init__(self, world_size: int) -> None:
        super().__init__()
        self.allreduce = ops.AllReduce()
        self.scale = 1.0 / world_size
        self.hyper_map = ops.HyperMap()

    def construct(self, grads: Tuple[ms.Tensor, ...]) -> Tuple[ms.Tensor, ...]:
        return self.hyper_map(ops.partial(_mean, self.allreduce, self.scale), grads)


class LocalGradients(nn.Cell):
    """Each rank's own gradients, unreduced: what a launch without gradient reduction trains (a diagnostic)."""

    def construct(self, grads: Tuple[ms.Tensor, ...]) -> Tuple[ms.Tensor, ...]:
        return grads


class HostGradMean:
    """Across-rank mean of a gradient tuple through host memory and one mpi4py ``Allreduce`` per step.

    Called from Python between the backward and the update graphs (the split step of the engine's TrainStep).
    Gradients are packed into one of two persistent float32 buffers that alternate between calls (no page faults
    per step); the returned float32 tensors are views of it, valid until the call after next.
    """

    def __init__(self, collectives: MpiCollectives) -> None:
        self.collectives = collectives
        self.scale = np.float32(1.0 / collectives.world_size)
        self.calls = 0
        self._buffers: List[np.ndarray] = []

    def __call__(self, grads: Sequence[ms.Tensor]) -> Tuple[ms.Tensor, ...]:
        arrays = [g.asnumpy() for g in grads]
        bounds = np.cumsum([0] + [a.size for a in arrays])
        if not self._buffers or self._buffers[0].size != bounds[-1]:
            self._buffers = [np.empty(bounds[-1], np.float32) for _ in range(2)]
        flat = self._buffers[self.calls % 2]
        for a, start, end in zip(arrays, bounds[:-1], bounds[1:]):
            flat[start:end] = a.ravel()
        self.calls += 1
        self.collectives.allreduce_inplace(flat, f"the gradient all-reduce of step {self.calls}")
        flat *= self.scale
        pieces = (flat[start:end].reshape(a.shape) for a, start, end in zip(arrays, bounds[:-1], bounds[1:]))
        return tuple(ms.Tensor.from_numpy(p) if a.dtype == np.float32 else ms.Tensor(p.astype(a.dtype))
                     for a, p in zip(arrays, pieces))
