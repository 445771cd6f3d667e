"""Dilated ResNet-50/101: the DeepLab backbone, with the published MindSpore parameter names.

DeepLab keeps the feature map large by replacing the strides of the last stages with dilation (atrous
convolution): at output stride 16 layer4 runs at stride 1 with dilations ``2 x multi_grid``; at output stride 8
layer3 also runs at stride 1 with dilation 2 and layer4's base dilation becomes 4. The stride and the dilation sit
on the bottleneck's 3x3 convolution (the "ResNet v1.5" placement the published weights use), with
``padding = dilation`` so the 3x3 keeps the size at stride 1.

Changing the output stride changes no parameter name or shape, which is what lets an OS16-trained network be
evaluated (or fine-tuned) at OS8 by rebuilding it and loading the same checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import mindspore.nn as nn
import numpy as np
from mindspore import Tensor

from .backbone import Stage
from .layers import batch_norm, conv2d

EXPANSION = 4
STEM_STRIDE = 4  # the 7x7/2 convolution and the 3x3/2 max-pool
DEPTHS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


@dataclass(frozen=True)
class StagePlan:
    """How one residual stage runs: the stride of its first block and the dilation of every block."""

    name: str
    stride: int
    dilations: Tuple[int, ...]


def plan_stages(layers: Sequence[int], output_stride: int, multi_grid: Sequence[int]) -> List[StagePlan]:
    """Strides and dilations of layer1..layer4 for an output stride of 16 or 8.

    The stem reduces by 4, layer2 by 2 more (stride 8); OS16 keeps layer3's stride 2, OS8 dilates it instead.
    Layer4 never strides; block ``i`` gets ``base x multi_grid[i]``, the grid repeating cyclically when layer4 has
    more blocks than the grid has entries (and truncated when it has fewer, e.g. in small test networks).
    """
    if output_stride == 16:
        layer3_stride, layer3_dilation, layer4_base = 2, 1, 2
    elif output_stride == 8:
        layer3_stride, layer3_dilation, layer4_base = 1, 2, 4
    else:
        raise ValueError(f"output stride {output_stride} is not supported; use 8 or 16")
    grid = tuple(layer4_base * multi_grid[i % len(multi_grid)] for i in range(layers[3]))
    return [
        StagePlan("layer1", 1, (1,) * layers[0]),
        StagePlan("layer2", 2, (1,) * layers[1]),
        StagePlan("layer3", layer3_stride, (layer3_dilation,) * layers[2]),
        StagePlan("layer4", 1, grid),
    ]


class Bottleneck(nn.Cell):
    """1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand, each with BN; identity or ``down_sample`` shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1,
                 bn_momentum: float = 0.9, bn_eps: float = 1e-5) -> None:
        super().__init__()
        out_channels = channels * EXPANSION
        self.conv1 = conv2d(in_channels, channels, 1)
        self.bn1 = batch_norm(channels, bn_momentum, bn_eps)
        self.conv2 = conv2d(channels, channels, 3, stride=stride, dilation=dilation)
        self.bn2 = batch_norm(channels, bn_momentum, bn_eps)
        self.conv3 = conv2d(channels, out_channels, 1)
        self.bn3 = batch_norm(out_channels, bn_momentum, bn_eps)
        self.relu = nn.ReLU()
        self.down_sample: Optional[nn.SequentialCell] = None
        if stride != 1 or in_channels != out_channels:
            self.down_sample = nn.SequentialCell([conv2d(in_channels, out_channels, 1, stride=stride),
                                                  batch_norm(out_channels, bn_momentum, bn_eps)])

    def construct(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.down_sample is not None:
            identity = self.down_sample(x)
        return self.relu(out + identity)


class DilatedResNet(nn.Cell):
    """ResNet stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool with "same" padding) and four dilated stages.

    ``construct`` returns the outputs of all four stages; :class:`ResNetFeatures` picks the ones a head needs.
    ``base_channels`` scales every width (64 is ResNet; small values give quick test networks with the real
    strides).
    """

    def __init__(self, layers: Sequence[int], output_stride: int = 16, multi_grid: Sequence[int] = (1, 2, 4),
                 base_channels: int = 64, bn_momentum: float = 0.9, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.plan = plan_stages(layers, output_stride, multi_grid)
        self.output_stride = output_stride
        self.out_channels = [base_channels * EXPANSION * 2 ** i for i in range(4)]
        self.conv1 = conv2d(3, base_channels, 7, stride=2)
        self.bn1 = batch_norm(base_channels, bn_momentum, bn_eps)
        self.relu = nn.ReLU()
        self.max_pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        in_channels = base_channels
        for i, stage in enumerate(self.plan):
            channels = base_channels * 2 ** i
            blocks = [Bottleneck(in_channels if b == 0 else channels * EXPANSION, channels,
                                 stride=stage.stride if b == 0 else 1, dilation=dilation,
                                 bn_momentum=bn_momentum, bn_eps=bn_eps)
                      for b, dilation in enumerate(stage.dilations)]
            setattr(self, stage.name, nn.SequentialCell(blocks))
            in_channels = channels * EXPANSION

    def stem(self, x: Tensor) -> Tensor:
        return self.max_pool(self.relu(self.bn1(self.conv1(x))))

    def construct(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4


class ResNetFeatures(nn.Cell):
    """The backbone as the heads see it (:class:`~deeplabv3.models.backbone.Backbone`): ``(layer1, layer4)``.

    The ResNet is held as ``net``; the extra level is what gives the published checkpoints their
    ``backbone.net.`` prefix. The layer1 output is DeepLabV3+'s low-level input and costs nothing to return when
    unused.
    """

    def __init__(self, net: DilatedResNet) -> None:
        super().__init__()
        self.net = net
        self.low_level_channels = net.out_channels[0]
        self.out_channels = net.out_channels[3]
        self.output_stride = net.output_stride

    def construct(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        c1, _, _, c4 = self.net(x)
        return c1, c4

    def stages(self) -> List[Stage]:
        """layer1..layer4 with their strides, dilations, output channels and parameter counts."""
        stride, stages = STEM_STRIDE, []
        for plan, channels in zip(self.net.plan, self.net.out_channels):
            stride *= plan.stride
            params = sum(int(np.prod(p.shape)) for p in getattr(self.net, plan.name).get_parameters())
            stages.append(Stage(plan.name, stride, plan.dilations, channels, params))
        return stages

    def stage_features(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.net(x)
