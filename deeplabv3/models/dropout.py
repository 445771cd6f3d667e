"""Dropout whose masks are a function of (seed, step, rank): same-seed reruns and resumed runs draw the same masks.

MindSpore's CPU dropout keeps its random state inside the kernel, where no checkpoint reaches it, so a resumed run
(and, with some kernels, a rerun) draws other masks than the uninterrupted run. :class:`SeededDropout` draws its
mask in the graph from a counter-based hash instead: element ``i`` of the input is kept when
``lowbias32(i XOR key) >> 8`` (24 uniform bits) falls below ``keep_prob * 2**24``. The 32-bit ``key`` is set from the
host before every forward pass (:class:`DropoutKeys`), derived from the run's seed, the micro-batch counter, the
rank and the cell's position, so every step, rank and dropout layer draws an independent mask while nothing about
the masks needs saving.

The key is a :class:`~mindspore.Parameter` the cell does not register (it is stored past ``Cell.__setattr__``): the
graph reads it as a parameter, so a new value needs no recompilation, yet it is no network parameter, so
checkpoints keep exactly the published tensor names. In inference mode the cell is the identity.
"""
from __future__ import annotations

import hashlib
from typing import List

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

_M1, _M2 = 0x7FEB352D, 0x846CA68B  # lowbias32 (C. Wellons' hash-prospector): a well-mixed 32-bit bijection


def _shift(h: Tensor, bits: int) -> Tensor:
    return ops.bitwise_xor(h, ops.bitwise_right_shift(h, Tensor(bits, ms.uint32)))


def lowbias32(h: Tensor) -> Tensor:
    """The hash of every element of a uint32 tensor (multiplications wrap modulo 2**32)."""
    h = _shift(h, 16) * Tensor(_M1, ms.uint32)
    h = _shift(h, 15) * Tensor(_M2, ms.uint32)
    return _shift(h, 16)


class SeededDropout(nn.Cell):
    """Inverted dropout with drop probability ``p`` and a mask drawn from the key (see the module docstring)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability {p} is not in [0, 1)")
        self.keep_prob = 1.0 - p
        self.threshold = int(round(self.keep_prob * 2 ** 24))
        object.__setattr__(self, "key", Parameter(Tensor(np.zeros(1, np.uint32)), name="dropout_key",
                                                  requires_grad=False))

    def set_key(self, key: int) -> None:
        self.key.set_data(Tensor(np.array([key], np.uint32)))

    def construct(self, x: Tensor) -> Tensor:
        if not self.training or self.keep_prob == 1.0:
            return x
        index = ops.arange(0, x.size, dtype=ms.int32).astype(ms.uint32).reshape(x.shape)
        # (h >> 8) < threshold, as h < threshold * 2**8: one pass less over the tensor
        keep = lowbias32(ops.bitwise_xor(index, self.key)) < Tensor(self.threshold << 8, ms.uint32)
        return x * (keep.astype(x.dtype) * (1.0 / self.keep_prob))


def dropout_key(seed: int, counter: int, rank: int, layer: int) -> int:
    """The 32-bit key of dropout layer ``layer`` at micro-batch ``counter`` of rank ``rank`` of a run seeded
    ``seed``."""
    digest = hashlib.blake2b(f"{seed}/{counter}/{rank}/{layer}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


class DropoutKeys:
    """Sets the keys of a network's :class:`SeededDropout` layers before each forward pass of training.

    ``counter`` counts micro-batches from the start of the run (``step * grad_accum_steps + i``), so a resumed run
    continues the uninterrupted run's sequence of masks.
    """

    def __init__(self, net: nn.Cell, seed: int, rank: int) -> None:
        self.layers: List[SeededDropout] = [c for _, c in net.cells_and_names() if isinstance(c, SeededDropout)]
        self.seed, self.rank = seed, rank

    def __call__(self, counter: int) -> None:
        for layer, cell in enumerate(self.layers):
            cell.set_key(dropout_key(self.seed, counter, self.rank, layer))


__all__ = ["SeededDropout", "DropoutKeys", "dropout_key", "lowbias32"]
