"""Output stride by dilation: turn the late strided convolutions of a built CNN into dilated ones.

MindCV's models take no output-stride argument and MindSpore fixes a convolution's stride and dilation when it is
constructed, so the conversion works on the built network. Each convolution's input stride (input size / its
input's size) is measured with one forward pass; then, for a target output stride ``OS``:

* a convolution whose output stride ``s_in * stride`` does not exceed ``OS`` is left alone;
* a convolution whose input stride already reaches ``OS`` runs at stride 1 with its dilation multiplied by
  ``s_in / OS`` (timm's ``output_stride`` rule), and the strided convolution that starts such a stage keeps the
  previous dilation (``first_dilation="previous"``) or takes the new one (``"new"``, the placement of the
  published DeepLab ResNets, whose layer3 runs at dilation 2 in every block at OS8);
* ``multi_grid`` multiplies the dilations of the blocks of one stage (DeepLab's ResNet layer4).

Rebuilt convolutions get the padding that keeps the size at stride 1 (``d * (k - 1)``, centred for odd kernels,
after the input for even ones such as ConvNeXt's 2x2 downsampling) and reuse the original Parameters: names and
shapes do not change with the output stride, so one checkpoint serves OS16 and OS8. With that padding a dilated
network sampled every ``stride`` pixels computes exactly what the strided original computes (tested for
MobileNetV2 and ConvNeXt); convolutions MindCV pads "same" at stride 2 (MobileNetV3, EfficientNet) pad only after
the input, so their dense maps sit half a step off the original's sampling grid.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mindspore as ms
import mindspore.nn as nn
import numpy as np

PROBE_SIZE = 64  # a multiple of 32: every stride of the supported families divides it exactly


class DilationError(ValueError):
    """The network cannot reach the requested output stride by dilating convolutions."""


@dataclass(frozen=True)
class ConvChange:
    """How one convolution runs after the conversion (for inspection and tests)."""

    name: str
    input_stride: int
    stride: int
    dilation: int


@contextmanager
def _eager_inference(net: nn.Cell) -> Iterator[None]:
    """PyNative mode and inference mode for a measuring forward pass (BN statistics untouched), then restored."""
    mode, training = ms.get_context("mode"), net.training
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net.set_train(False)
    try:
        yield
    finally:
        net.set_train(training)
        ms.set_context(mode=mode)


def record_shapes(net: nn.Cell, cells: Sequence[Tuple[str, nn.Cell]],
                  input_shape: Tuple[int, ...]) -> Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """Input and output shape of each of ``cells`` (name -> (input shape, output shape)) in one eager inference
    forward pass of ``net`` on a zero image of ``input_shape``. A cell run twice keeps its first call's shapes."""
    seen: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {}
    handles = []
    for name, cell in cells:
        def hook(_cell: nn.Cell, inputs: tuple, output: Any, name: str = name) -> None:
            seen.setdefault(name, (tuple(inputs[0].shape), tuple(output.shape)))
        handles.append(cell.register_forward_hook(hook))
    try:
        with _eager_inference(net):
            net(ms.Tensor(np.zeros(input_shape, np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def measure_strides(net: nn.Cell, cells: Sequence[Tuple[str, nn.Cell]],
                    size: int = PROBE_SIZE) -> Dict[str, Tuple[int, int]]:
    """Input and output stride of each of ``cells`` (name -> (input size / its input's size, input size / its
    output's size)), measured on one ``size`` square image."""
    shapes = record_shapes(net, cells, (1, 3, size, size))
    return {name: (size // int(i[2]), size // int(o[2])) for name, (i, o) in shapes.items()}


def _same_padding(kernel: int, dilation: int) -> Tuple[int, int]:
    """Size-keeping (before, after) padding: centred for odd kernels; for even ones all after, so that output
    ``j`` reads inputs ``j, j + d, ...`` as the strided original's output ``j / stride`` did (ConvNeXt's 2x2
    downsampling): the dilated map sampled every ``stride`` pixels is then the original map."""
    total = dilation * (kernel - 1)
    before = total // 2 if kernel % 2 else 0
    return before, total - before


def _rebuilt(conv: nn.Conv2d, stride: int, dilation: int) -> nn.Conv2d:
    """``conv`` with a new stride and dilation, size-keeping padding and the very same Parameters."""
    kh, kw = conv.kernel_size
    dh, dw = (dilation if kh > 1 else 1), (dilation if kw > 1 else 1)
    padding: Union[int, Tuple[int, ...]] = (*_same_padding(kh, dh), *_same_padding(kw, dw))
    if len(set(padding)) == 1:
        padding = padding[0]
    new = nn.Conv2d(conv.in_channels, conv.out_channels, (kh, kw), stride=stride, pad_mode="pad", padding=padding,
                    dilation=(dh, dw), group=conv.group, has_bias=conv.has_bias, data_format=conv.data_format)
    new.weight = conv.weight
    if conv.has_bias:
        new.bias = conv.bias
    return new


def _replace(root: nn.Cell, name: str, new: nn.Cell) -> None:
    """Put ``new`` where ``root``'s cell ``name`` is, keeping a SequentialCell's list in step with its attributes."""
    parent_name, _, child = name.rpartition(".")
    parent = root
    for part in parent_name.split(".") if parent_name else []:
        parent = getattr(parent, part)
    setattr(parent, child, new)
    if isinstance(parent, nn.SequentialCell):
        parent.cell_list = list(parent.name_cells().values())


def plan_dilation(convs: Sequence[Tuple[str, nn.Conv2d]], strides: Dict[str, Tuple[int, int]], output_stride: int,
                  first_dilation: str = "previous",
                  multi_grid: Optional[Tuple[Sequence[str], Sequence[int]]] = None) -> List[ConvChange]:
    """The stride and dilation every convolution gets at ``output_stride`` (see the module doc).

    ``multi_grid`` is ``(block_prefixes, grid)``: the dilated convolutions under ``block_prefixes[i]`` have their
    dilation multiplied by ``grid[i % len(grid)]`` (the grid repeats over longer stages).
    """
    changes = []
    for name, conv in convs:
        s_in, stride = strides[name][0], conv.stride[0]
        dilation = conv.dilation[0]
        if s_in * stride <= output_stride:
            changes.append(ConvChange(name, s_in, stride, dilation))
            continue
        if s_in < output_stride:
            raise DilationError(f"convolution {name} strides from {s_in} to {s_in * stride}, past output stride "
                                f"{output_stride}: it cannot be split into a stride and a dilation")
        reached = s_in * stride if (stride > 1 and first_dilation == "new") else s_in
        changes.append(ConvChange(name, s_in, 1, dilation * reached // output_stride))
    if multi_grid is not None:
        prefixes, grid = multi_grid
        for i, prefix in enumerate(prefixes):
            factor = grid[i % len(grid)]
            changes = [ConvChange(c.name, c.input_stride, c.stride, c.dilation * factor)
                       if c.name.startswith(prefix) and c.input_stride >= output_stride else c for c in changes]
    return changes


def apply_dilation(root: nn.Cell, changes: Sequence[ConvChange]) -> int:
    """Rebuild the convolutions of ``root`` whose stride or dilation changes; returns how many were rebuilt."""
    cells = dict(root.cells_and_names())
    names = {id(p): p.name for p in root.get_parameters()}
    rebuilt = 0
    for change in changes:
        conv = cells[change.name]
        kernel_dilates = max(conv.kernel_size) > 1
        want_dilation = change.dilation if kernel_dilates else conv.dilation[0]
        if conv.stride[0] == change.stride and conv.dilation[0] == want_dilation:
            continue
        _replace(root, change.name, _rebuilt(conv, change.stride, change.dilation))
        rebuilt += 1
    for p in root.get_parameters():  # the same Parameters keep the names they had
        p.name = names[id(p)]
    return rebuilt
