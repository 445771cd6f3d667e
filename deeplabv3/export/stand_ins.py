"""Export-time stand-ins for cells that MindSpore 2.10's ONNX exporter cannot write, or writes wrongly.

* ``nn.HSwish`` / ``nn.HSigmoid`` (MobileNetV3) have no ONNX conversion: they become ``x * relu6(x + 3) / 6`` and
  ``relu6(x + 3) / 6``, the same functions composed of operators the exporter has.
* A ``Conv2d`` with padding that differs before and after (the dilated 2x2 downsampling of ConvNeXt, padded
  ``(top, bottom, left, right) = (0, d, 0, d)``) is written with its pads in MindSpore's order where ONNX reads
  ``(top, left, bottom, right)``, so ONNX Runtime pads the wrong sides and rejects the graph (``Incompatible
  dimensions`` in the residual Add after it). It becomes an explicit zero ``Pad`` and the same convolution
  without padding, which every format writes correctly.

:func:`swapped_cells` puts stand-ins in place for the duration of an export; they hold the very same Parameters
(names unchanged) and the original cells are put back on exit, so the network is unchanged afterwards.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, List, Optional, Tuple

import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import Tensor


class HardSwish(nn.Cell):
    """``nn.HSwish`` as ``x * relu6(x + 3) / 6``."""

    def construct(self, x: Tensor) -> Tensor:
        return x * ops.relu6(x + 3.0) / 6.0


class HardSigmoid(nn.Cell):
    """``nn.HSigmoid`` as ``relu6(x + 3) / 6``."""

    def construct(self, x: Tensor) -> Tensor:
        return ops.relu6(x + 3.0) / 6.0


def _asymmetric_padding(conv: nn.Conv2d) -> Optional[Tuple[int, int, int, int]]:
    """``conv``'s (top, bottom, left, right) padding when it pads one side more than the other, else ``None``."""
    if conv.pad_mode != "pad" or isinstance(conv.padding, int):
        return None
    top, bottom, left, right = conv.padding
    return None if (top, left) == (bottom, right) else (top, bottom, left, right)


class PaddedConv(nn.Cell):
    """An asymmetrically padded ``conv`` as an explicit zero pad and the same convolution, unpadded."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        top, bottom, left, right = conv.padding
        self.pad = nn.Pad(((0, 0), (0, 0), (top, bottom), (left, right)))
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                              pad_mode="valid", dilation=conv.dilation, group=conv.group, has_bias=conv.has_bias,
                              data_format=conv.data_format)
        self.conv.weight = conv.weight
        if conv.has_bias:
            self.conv.bias = conv.bias

    def construct(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


def onnx_stand_in(cell: nn.Cell) -> Optional[nn.Cell]:
    """The stand-in ONNX export needs for ``cell``, or ``None`` when the exporter writes ``cell`` correctly."""
    if isinstance(cell, nn.HSwish):
        return HardSwish()
    if isinstance(cell, nn.HSigmoid):
        return HardSigmoid()
    if isinstance(cell, nn.Conv2d) and _asymmetric_padding(cell) is not None:
        return PaddedConv(cell)
    return None


def _put(parent: nn.Cell, attr: str, cell: nn.Cell) -> None:
    """``parent.attr = cell``, keeping a SequentialCell's list of cells (what it runs) in step."""
    setattr(parent, attr, cell)
    if isinstance(parent, nn.SequentialCell):
        parent.cell_list = list(parent.name_cells().values())


@contextlib.contextmanager
def swapped_cells(net: nn.Cell, stand_in: Callable[[nn.Cell], Optional[nn.Cell]]) -> Iterator[int]:
    """Within the block, every cell of ``net`` for which ``stand_in`` returns a cell is replaced by it.

    Yields the number of cells swapped. Parameters keep their names (a stand-in holding a Parameter under another
    attribute would otherwise rename it); the original cells are put back on exit. Wrap ``net`` in a new
    top-level cell inside the block so the swapped graph is compiled afresh.
    """
    names = {id(p): p.name for p in net.get_parameters()}
    swaps: List[Tuple[nn.Cell, str, nn.Cell, nn.Cell]] = []
    for _, parent in net.cells_and_names():
        for attr, child in parent.name_cells().items():
            new = stand_in(child)
            if new is not None:
                swaps.append((parent, attr, child, new))
    try:
        for parent, attr, _, new in swaps:
            _put(parent, attr, new)
        for p in net.get_parameters():
            p.name = names[id(p)]
        yield len(swaps)
    finally:
        for parent, attr, child, _ in swaps:
            _put(parent, attr, child)
        for p in net.get_parameters():
            p.name = names[id(p)]
