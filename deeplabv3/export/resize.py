"""Resizing as two matrix products, for export formats that lack MindSpore's resize operators.

MindSpore 2.10 cannot write its bilinear or nearest resize operators to ONNX. With ``align_corners=True`` both
are separable and linear: each output row is a fixed combination of input rows, and likewise for columns. So for
a fixed input size the resize of an N x C x h x w map to H x W is ``R @ x @ Cᵀ`` with an H x h row matrix ``R``
and a W x w column matrix ``C``, two MatMuls that every format supports. The matrices depend only on the sizes,
which are constants once the input size is fixed; they are built while the graph compiles and stored in the
exported file as constants.

:func:`matrix_resizes` swaps these cells in for a network's own resize cells for the duration of an export; the
network's parameters and every other cell stay the same objects.
"""
from __future__ import annotations

from typing import Callable, ContextManager, Dict, Tuple

import mindspore.nn as nn
import mindspore.ops as ops
import numpy as np
from mindspore import Tensor

from ..models.layers import Resize
from .stand_ins import swapped_cells


def _source_positions(n_in: int, n_out: int) -> np.ndarray:
    """Where output index ``i`` samples the input with ``align_corners=True``: ``i * (n_in - 1) / (n_out - 1)``.

    The first and last samples sit exactly on the first and last input pixels; a single output samples the first.
    """
    if n_out == 1:
        return np.zeros(1)
    return np.arange(n_out) * ((n_in - 1) / (n_out - 1))


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``n_out x n_in`` float32 matrix of 1-D linear interpolation with ``align_corners=True``.

    Row ``i`` holds the weights ``1 - f`` and ``f`` of the two input pixels around position ``i * scale``, the
    same weights ``ops.interpolate(..., mode="bilinear", align_corners=True)`` applies (computed here in float64,
    so the result differs from the operator only by float32 rounding).
    """
    src = _source_positions(n_in, n_out)
    low = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = src - low
    matrix = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix.astype(np.float32)


def nearest_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``n_out x n_in`` 0/1 selection matrix of nearest-neighbour resizing with ``align_corners=True``.

    MindSpore's ``ResizeNearestNeighbor`` rounds the float32 position ``i * scale`` half away from zero; the same
    rounding is done here so ties pick the same pixel. A product with a 0/1 matrix copies values exactly.
    """
    scale = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0.0)
    src = np.arange(n_out, dtype=np.float32) * scale
    index = np.floor(src) + (src - np.floor(src) >= np.float32(0.5))
    index = np.minimum(index.astype(np.int64), n_in - 1)
    matrix = np.zeros((n_out, n_in), np.float32)
    matrix[np.arange(n_out), index] = 1.0
    return matrix


MATRIX_BUILDERS: Dict[str, Callable[[int, int], np.ndarray]] = {
    "bilinear": bilinear_matrix,
    "nearest": nearest_matrix,
}


@ops.constexpr
def _resize_matrices(mode: str, in_h: int, in_w: int, out_h: int, out_w: int) -> Tuple[Tensor, Tensor]:
    """The row matrix and the transposed column matrix, evaluated once per size while the graph compiles."""
    build = MATRIX_BUILDERS[mode]
    return Tensor(build(in_h, out_h)), Tensor(np.ascontiguousarray(build(in_w, out_w).T))


class MatrixResize(nn.Cell):
    """Drop-in for :class:`~deeplabv3.models.layers.Resize` with static shapes: ``rows @ x @ colsᵀ``.

    Needs every size known when the graph compiles (a fixed input size), which is what ONNX export requires.
    """

    def __init__(self, mode: str = "bilinear") -> None:
        super().__init__()
        if mode not in MATRIX_BUILDERS:
            raise ValueError(f"resize mode {mode!r} has no matrix form; choose one of {', '.join(MATRIX_BUILDERS)}")
        self.mode = mode

    def construct(self, x: Tensor, size: Tuple[int, int]) -> Tensor:
        rows, cols_t = _resize_matrices(self.mode, x.shape[2], x.shape[3], size[0], size[1])
        return ops.matmul(rows, ops.matmul(x, cols_t))


def matrix_resizes(net: nn.Cell) -> ContextManager[int]:
    """Within the block, every :class:`Resize` cell of ``net`` is a :class:`MatrixResize` of the same mode.

    Yields the number of cells swapped. The original cells are put back on exit, so ``net`` is unchanged
    afterwards; wrap ``net`` in a new top-level cell inside the block so the swapped graph is compiled afresh.
    """
    return swapped_cells(net, lambda cell: MatrixResize(cell.mode) if isinstance(cell, Resize) else None)
