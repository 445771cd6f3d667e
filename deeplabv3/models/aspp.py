"""Atrous Spatial Pyramid Pooling: parallel dilated convolutions plus image-level pooling, fused by a 1x1.

Branch ``i`` of ``aspp_convs`` is a 1x1 convolution for rate 1 and a 3x3 with ``padding = dilation = rate``
otherwise; the last branch pools the whole image. The cell and attribute names (``aspp_convs.<i>._aspp_conv``,
``aspp_convs.<n>.conv``, ``conv1``, ``bn1``) are those of the published checkpoints.
"""
from __future__ import annotations

from typing import Sequence

import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import Tensor

from .dropout import SeededDropout
from .layers import batch_norm, conv2d


class ASPPConv(nn.Cell):
    """One atrous branch: conv (1x1 at rate 1, else dilated 3x3) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, rate: int, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        kernel = 1 if rate == 1 else 3
        self._aspp_conv = nn.SequentialCell([conv2d(in_channels, out_channels, kernel, dilation=rate),
                                             batch_norm(out_channels, bn_momentum, bn_eps), nn.ReLU()])

    def construct(self, x: Tensor) -> Tensor:
        return self._aspp_conv(x)


class ASPPPooling(nn.Cell):
    """Image-level features: global mean -> 1x1 conv -> BN -> ReLU, spread back over the feature map.

    The pooled map is 1x1, so nearest, bilinear and a broadcast all give the same result; the broadcast is the
    cheapest and also exports to ONNX (resize and adaptive pooling ops do not).
    """

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.conv = nn.SequentialCell([conv2d(in_channels, out_channels, 1),
                                       batch_norm(out_channels, bn_momentum, bn_eps), nn.ReLU()])

    def construct(self, x: Tensor) -> Tensor:
        pooled = self.conv(ops.mean(x, (2, 3), True))
        return ops.broadcast_to(pooled, (x.shape[0], pooled.shape[1], x.shape[2], x.shape[3]))


class ASPP(nn.Cell):
    """All branches, concatenated and projected: 1x1 -> BN -> ReLU -> Dropout (drop probability ``dropout``)."""

    def __init__(self, in_channels: int, out_channels: int = 256, rates: Sequence[int] = (1, 6, 12, 18),
                 dropout: float = 0.7, bn_momentum: float = 0.9, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.out_channels = out_channels
        branches = [ASPPConv(in_channels, out_channels, rate, bn_momentum, bn_eps) for rate in rates]
        branches.append(ASPPPooling(in_channels, out_channels, bn_momentum, bn_eps))
        self.aspp_convs = nn.CellList(branches)
        self.conv1 = conv2d(out_channels * len(branches), out_channels, 1)
        self.bn1 = batch_norm(out_channels, bn_momentum, bn_eps)
        self.relu = nn.ReLU()
        self.dropout = SeededDropout(dropout)

    def construct(self, x: Tensor) -> Tensor:
        features = ()
        for branch in self.aspp_convs:
            features = features + (branch(x),)
        x = self.relu(self.bn1(self.conv1(ops.cat(features, 1))))
        return self.dropout(x)
