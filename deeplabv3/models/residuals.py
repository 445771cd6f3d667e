"""MindCV's residual blocks with their sums written out of place, so every family exports to ONNX.

MindCV writes the residual sum ``out += identity`` (ResNet) and ``result += x`` (EfficientNet), which graph mode
compiles to ``InplaceAddExt``, an operator MindSpore's ONNX exporter does not know. The subclasses here compute
the same sum as a plain ``Add``; :func:`use_out_of_place_residuals` gives a built network's blocks their forward
(same cells, same parameters), which changes nothing for training or MINDIR.
"""
from __future__ import annotations

from typing import Dict, Type

import mindspore.nn as nn
from mindcv.models.efficientnet import FusedMBConv, MBConv
from mindcv.models.resnet import BasicBlock, Bottleneck
from mindspore import Tensor


class AddBasicBlock(BasicBlock):
    """MindCV's ResNet basic block, residual sum out of place."""

    def construct(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.down_sample is None else self.down_sample(x)
        return self.relu(out + identity)


class AddBottleneck(Bottleneck):
    """MindCV's ResNet bottleneck, residual sum out of place."""

    def construct(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.down_sample is None else self.down_sample(x)
        return self.relu(out + identity)


def _mbconv_forward(self: nn.Cell, x: Tensor) -> Tensor:
    result = self.block(x)
    if self.shortcut:
        result = self.dropout(result) + x
    return result


class AddMBConv(MBConv):
    """MindCV's EfficientNet MBConv, residual sum out of place."""

    construct = _mbconv_forward


class AddFusedMBConv(FusedMBConv):
    """MindCV's EfficientNetV2 fused MBConv, residual sum out of place."""

    construct = _mbconv_forward


OUT_OF_PLACE: Dict[Type[nn.Cell], Type[nn.Cell]] = {BasicBlock: AddBasicBlock, Bottleneck: AddBottleneck,
                                                    MBConv: AddMBConv, FusedMBConv: AddFusedMBConv}


def use_out_of_place_residuals(net: nn.Cell) -> None:
    """Give every MindCV block of ``net`` listed in :data:`OUT_OF_PLACE` its out-of-place forward."""
    for _, cell in net.cells_and_names():
        if type(cell) in OUT_OF_PLACE:
            cell.__class__ = OUT_OF_PLACE[type(cell)]
