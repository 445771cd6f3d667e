"""One copy of the network's non-trained state on every rank: the across-rank mean of the BatchNorm statistics.

Data-parallel ranks train identical weights (the gradients are averaged) but each BatchNorm layer keeps running
statistics of its own rank's batches. A sharded evaluation would then score a mixture of per-rank models, and the
checkpoint rank 0 writes would not be the model that was scored. The trainer therefore replaces every rank's
statistics with their mean (as a larger batch would estimate them) before each evaluation and each save, so the
logged figures are those of the saved checkpoint, and a resumed run starts every rank from the state the
uninterrupted run had.

The sum runs in float64: exact for float32 values over any practical rank count, so identical values (frozen
layers, or a second call at the same step) come back bit-identical.
"""
from __future__ import annotations

from typing import Any, Sequence

import mindspore as ms
import numpy as np


def average_across_ranks(ctx: Any, params: Sequence[ms.Parameter]) -> None:
    """Set each of ``params`` to its mean over the ranks of ``ctx`` (one all-reduce; all ranks must call it)."""
    if ctx.world_size == 1 or not params:
        return
    arrays = [p.asnumpy() for p in params]
    flat = np.concatenate([a.astype(np.float64).ravel() for a in arrays])
    mean = ctx.allreduce_sum(flat) / ctx.world_size
    start = 0
    for param, array in zip(params, arrays):
        piece = mean[start:start + array.size].reshape(array.shape)
        start += array.size
        param.set_data(ms.Tensor(piece.astype(array.dtype), dtype=param.dtype))


__all__ = ["average_across_ranks"]
