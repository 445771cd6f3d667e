"""MindCV's ResNet with settable depth and width: the quick networks of the demo and the tests.

``model.layers`` and ``model.base_channels`` shrink a ResNet while keeping its structure, parameter names and
strides. MindCV's ResNet fixes its widths at 64/128/256/512, so :class:`ScaledResNet` scales them by
``base_channels / 64`` (64 builds MindCV's ResNet exactly); it is built and wrapped for feature extraction by
MindCV's own ``build_model_with_cfg``, like the named models ``create_model`` returns, and dilated by the same
conversion, so the small networks exercise the very backbone mechanism the full-size ones use.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Type, Union

import mindspore.nn as nn
from mindcv.models.helpers import build_model_with_cfg
from mindcv.models.resnet import BasicBlock, Bottleneck, ResNet, default_cfgs

Block = Type[Union[BasicBlock, Bottleneck]]
MINDCV_WIDTH = 64

#: block type, blocks per stage, groups and base width of each MindCV ResNet / ResNeXt (as its registry function
#: builds it; ``tests/test_models_backbones.py`` compares them).
RESNET_ARCHS: Dict[str, Tuple[Block, Tuple[int, ...], int, int]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), 1, 64), "resnet34": (BasicBlock, (3, 4, 6, 3), 1, 64),
    "resnet50": (Bottleneck, (3, 4, 6, 3), 1, 64), "resnet101": (Bottleneck, (3, 4, 23, 3), 1, 64),
    "resnet152": (Bottleneck, (3, 8, 36, 3), 1, 64), "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3), 32, 4),
    "resnext101_32x4d": (Bottleneck, (3, 4, 23, 3), 32, 4), "resnext101_64x4d": (Bottleneck, (3, 4, 23, 3), 64, 4),
    "resnext152_64x4d": (Bottleneck, (3, 8, 36, 3), 64, 4),
}


class ScaledResNet(ResNet):
    """MindCV's :class:`~mindcv.models.resnet.ResNet` with the stem and every stage ``base_channels / 64`` as wide."""

    def __init__(self, block: Block, layers: Sequence[int], base_channels: int = MINDCV_WIDTH,
                 **kwargs: Any) -> None:
        object.__setattr__(self, "_base_channels", base_channels)  # read by _make_layer during ResNet.__init__
        super().__init__(block, list(layers), **kwargs)
        if base_channels != MINDCV_WIDTH:
            self.conv1 = nn.Conv2d(kwargs.get("in_channels", 3), base_channels, kernel_size=7, stride=2,
                                   pad_mode="pad", padding=3)
            self.bn1 = self.norm(base_channels)
            for info in self.feature_info:
                info["chs"] = info["chs"] * base_channels // MINDCV_WIDTH
            self.num_features = self.num_features * base_channels // MINDCV_WIDTH
            self.classifier = nn.Dense(self.num_features, kwargs.get("num_classes", 1000))
            self._initialize_weights()

    def _make_layer(self, block: Block, channels: int, block_nums: int, stride: int = 1) -> nn.SequentialCell:
        if channels == MINDCV_WIDTH:  # layer1: its input is the (scaled) stem
            self.input_channels = self._base_channels
        return super()._make_layer(block, channels * self._base_channels // MINDCV_WIDTH, block_nums, stride)


def scaled_resnet_features(name: str, layers: Optional[Sequence[int]], base_channels: int,
                           out_indices: Sequence[int], **kwargs: Any) -> nn.Cell:
    """``name``'s architecture with ``layers`` blocks per stage (``None``: its own) and ``base_channels``, wrapped
    by MindCV's ``build_model_with_cfg(features_only=True)``."""
    block, depths, groups, base_width = RESNET_ARCHS[name]
    layers = list(depths if layers is None else layers)
    return build_model_with_cfg(ScaledResNet, False, default_cfgs[name], features_only=True,
                                out_indices=list(out_indices), block=block, layers=layers,
                                base_channels=base_channels, groups=groups, base_width=base_width, **kwargs)
