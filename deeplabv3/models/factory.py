"""``build_model``: the network a config's ``model`` section describes."""
from __future__ import annotations

from typing import Optional, Union

import mindspore.nn as nn

from ..config import Config, ModelConfig
from .aspp import ASPP
from .deeplab import DeepLabV3, DeepLabV3Plus
from .mindcv_backbone import build_backbone


def _model_section(cfg: Union[Config, ModelConfig]) -> ModelConfig:
    return cfg.model if isinstance(cfg, Config) else cfg


def build_model(cfg: Union[Config, ModelConfig], output_stride: Optional[int] = None) -> nn.Cell:
    """DeepLabV3 or DeepLabV3+ as configured, with freshly initialised weights.

    ``cfg`` is the whole :class:`Config` or its ``model`` section. ``output_stride`` overrides
    ``model.output_stride`` (e.g. to evaluate an OS16-trained network at OS8); it changes no parameter name or
    shape, so the same checkpoint loads either way.
    """
    model = _model_section(cfg)
    output_stride = model.output_stride if output_stride is None else output_stride
    bn = {"bn_momentum": model.bn_momentum, "bn_eps": model.bn_eps}
    backbone = build_backbone(model.backbone, output_stride, model.multi_grid, model.layers, model.base_channels,
                              **bn)
    aspp = ASPP(backbone.out_channels, model.aspp_channels, model.aspp_rates, model.dropout, **bn)
    if model.name == "deeplabv3plus":
        return DeepLabV3Plus(backbone, aspp, model.num_classes, model.low_level_channels, **bn)
    return DeepLabV3(backbone, aspp, model.num_classes)
