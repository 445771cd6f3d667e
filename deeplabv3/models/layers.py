"""Layers every network part builds from: convolution, BatchNorm, the classifier and the resize cell.

Backbone, ASPP and heads share these so that padding, initialisation and the BatchNorm momentum convention are
defined once.
"""
from __future__ import annotations

from typing import Tuple

import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import Tensor
from mindspore.common.initializer import HeNormal, Normal


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """Bias-free convolution (a BN follows) with symmetric padding ``dilation * (k - 1) / 2``, He-initialised.

    The padding keeps the size at stride 1, which is what lets dilation replace stride without changing shapes.
    """
    padding = dilation * (kernel_size - 1) // 2
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad", padding=padding,
                     dilation=dilation, has_bias=False, weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


def batch_norm(channels: int, momentum: float, eps: float) -> nn.BatchNorm2d:
    """BatchNorm with MindSpore's momentum convention (``moving = momentum * moving + (1 - momentum) * batch``)."""
    return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)


def classifier(in_channels: int, num_classes: int, has_bias: bool) -> nn.Conv2d:
    """The final 1x1 convolution, initialised small (std 0.01) so training starts from near-uniform scores."""
    return nn.Conv2d(in_channels, num_classes, 1, has_bias=has_bias, weight_init=Normal(0.01), bias_init="zeros")


class Resize(nn.Cell):
    """Resize NCHW maps to ``size`` with ``align_corners=True`` (bilinear, or nearest as DeepLabV3+'s decoder).

    Parameter-free and a cell of its own, so an exporter can swap in an equivalent its target format supports
    (:mod:`deeplabv3.export.resize`).
    """

    def __init__(self, mode: str = "bilinear") -> None:
        super().__init__()
        self.mode = mode

    def construct(self, x: Tensor, size: Tuple[int, int]) -> Tensor:
        if self.mode == "nearest":
            return ops.ResizeNearestNeighbor(size, True)(x)
        return ops.interpolate(x, size=size, mode="bilinear", align_corners=True)
