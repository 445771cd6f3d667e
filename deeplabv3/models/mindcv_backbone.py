"""Any supported MindCV CNN as the DeepLab backbone, at output stride 16 or 8.

The backbone is what ``mindcv.models.create_model(name, features_only=True, out_indices=...)`` builds (MindCV's
``FeatureExtractWrapper``: the classification model's top-level cells in order, sequential containers flattened to
``features_3`` ...). Its ``feature_info`` entries are the candidate features, and the heads' inputs are picked by
measured reduction, never by index (MobileNet and EfficientNet have one entry per block):

* the last stage: the last entry whose cell holds a convolution (the entries after it are a classification
  head's 1x1 convolution and activation, which DeepLab, like timm's feature extraction, does not use);
* DeepLabV3+'s low-level feature: the last entry at stride 4.

The cells after the last stage are dropped, then :mod:`~deeplabv3.models.dilation` converts strides into
dilations. ResNets follow the published DeepLab placement (the strided 3x3 of a dilated stage takes the new
dilation; multi-grid on layer4), every other family timm's rule (that convolution keeps the previous dilation).
Inside a DeepLab network the parameters are ``backbone.net.<wrapper name>``: for ResNet-101 exactly the published
``backbone.net.conv1.weight`` ... names.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import mindspore.nn as nn
import numpy as np
from mindcv.models import create_model
from mindspore import Tensor

from ..config.backbones import RESNET_FAMILIES, family_of
from .backbone import Stage
from .dilation import apply_dilation, measure_strides, plan_dilation
from .residuals import use_out_of_place_residuals
from .resnet import MINDCV_WIDTH, scaled_resnet_features

ALL_FEATURES = list(range(256))  # out_indices asking for every feature_info entry
LOW_LEVEL_STRIDE = 4

#: Sequential containers MindCV flattens in features_only mode (``features.3.x`` -> ``features_3.x``).
FLATTENED = {"mobilenet_v2": "features", "mobilenet_v3": "features", "efficientnet": "features",
             "convnext": "feature"}
#: Classification-model cells (besides those cut after the last stage) a backbone does not use.
HEADS = {"resnet": ("classifier", "fc", "end_point"), "resnext": ("classifier",), "repvgg": ("linear",),
         "mobilenet_v2": ("classifier",), "mobilenet_v3": ("classifier",), "efficientnet": ("mlp_head",),
         "convnext": ("norm", "classifier")}


@dataclass(frozen=True)
class _Point:
    """A ``feature_info`` entry of the built backbone: its cell's position in ``net`` and measured stride."""

    position: int
    name: str
    stride: int
    channels: int


class StageOutputs(nn.SequentialCell):
    """The wrapper's cells in order, returning the output of the cells at ``positions`` (every stage)."""

    def __init__(self, cells: "OrderedDict[str, nn.Cell]", positions: Sequence[int]) -> None:
        super().__init__(cells)
        self.positions = tuple(positions)

    def construct(self, x: Tensor) -> Tuple[Tensor, ...]:
        outputs = ()
        for i, cell in enumerate(self.cell_list):
            x = cell(x)
            if i in self.positions:
                outputs = outputs + (x,)
        return outputs


class MindCVBackbone(nn.Cell):
    """A dilated MindCV feature extractor returning ``(stride-4 features, last stage)``
    (:class:`~deeplabv3.models.backbone.Backbone`). ``net`` returns every stage's output."""

    def __init__(self, model_name: str, net: StageOutputs, points: Sequence[_Point], output_stride: int,
                 dropped: Sequence[str]) -> None:
        super().__init__()
        self.model_name = model_name
        self.family = family_of(model_name)
        self.net = net
        self.points = tuple(points)
        self.low_index = [i for i, p in enumerate(self.points) if p.stride == LOW_LEVEL_STRIDE][-1]
        self.low_level_channels = self.points[self.low_index].channels
        self.out_channels = self.points[-1].channels
        self.output_stride = output_stride
        self.dropped = tuple(dropped)

    def construct(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        outputs = self.net(x)
        return outputs[self.low_index], outputs[-1]

    def stage_features(self, x: Tensor) -> Tuple[Tensor, ...]:
        return self.net(x)

    def stages(self) -> List[Stage]:
        """Each stage's name, measured stride, per-block dilations (of its spatial convolutions), channels and
        parameters (a stage owns the cells after the previous one, e.g. ConvNeXt's downsampling layer)."""
        cells = list(self.net.name_cells().values())
        stages, start = [], None
        for point in self.points:
            owned = cells[point.position:point.position + 1] if start is None else cells[start:point.position + 1]
            start = point.position + 1
            stage_cell = cells[point.position]
            blocks = list(stage_cell.cell_list) if isinstance(stage_cell, nn.SequentialCell) else [stage_cell]
            params = sum(int(np.prod(p.shape)) for cell in owned for p in cell.get_parameters())
            stages.append(Stage(point.name, point.stride, tuple(_block_dilation(b) for b in blocks), point.channels,
                                params))
        return stages

    # ----------------------------------------------------------------- classification checkpoints (ImageNet)

    def classification_roots(self) -> Tuple[str, ...]:
        """First name components of the classification model's backbone tensors (what marks such a file)."""
        container = FLATTENED.get(self.family)
        if container is not None:
            return (container,)
        return tuple(dict.fromkeys(name.split(".", 1)[0] for name in self.net.name_cells()))

    def from_classification(self, name: str) -> Optional[str]:
        """This backbone's name (under ``net.``) for a classification-checkpoint tensor, or ``None`` when the
        tensor belongs to the classification head or to cells after the last stage (unused here)."""
        container = FLATTENED.get(self.family)
        if container is not None:
            name = re.sub(rf"^{container}\.(\d+)\.", rf"{container}_\1.", name)
        root = name.split(".", 1)[0]
        if root in HEADS[self.family] or root in self.dropped:
            return None
        return f"net.{name}"


def _block_dilation(block: nn.Cell) -> int:
    """The largest dilation among a block's spatial (k > 1) convolutions; 1 when it has none."""
    dilations = [c.dilation[0] for _, c in block.cells_and_names()
                 if isinstance(c, nn.Conv2d) and max(c.kernel_size) > 1]
    return max(dilations, default=1)


def _convs(cell: nn.Cell) -> List[Tuple[str, nn.Conv2d]]:
    return [(name, c) for name, c in cell.cells_and_names() if isinstance(c, nn.Conv2d)]


def _wrapped(name: str, layers: Optional[Sequence[int]], base_channels: int, bn_momentum: float,
             bn_eps: float) -> nn.Cell:
    """MindCV's features_only model for ``name`` with every feature_info entry requested."""
    if family_of(name) not in RESNET_FAMILIES:
        wrapper = create_model(name, features_only=True, out_indices=ALL_FEATURES)
    elif layers is not None or base_channels != MINDCV_WIDTH:
        wrapper = scaled_resnet_features(name, layers, base_channels, ALL_FEATURES, norm=_norm(bn_momentum, bn_eps))
    else:
        wrapper = create_model(name, features_only=True, out_indices=ALL_FEATURES, norm=_norm(bn_momentum, bn_eps))
    use_out_of_place_residuals(wrapper)
    return wrapper


def _norm(momentum: float, eps: float) -> Callable[[int], nn.BatchNorm2d]:
    return partial(nn.BatchNorm2d, momentum=momentum, eps=eps)


def build_backbone(name: str, output_stride: int, multi_grid: Sequence[int] = (1, 2, 4),
                   layers: Optional[Sequence[int]] = None, base_channels: int = MINDCV_WIDTH,
                   bn_momentum: float = 0.9, bn_eps: float = 1e-5) -> MindCVBackbone:
    """The dilated backbone ``name`` (a name of :data:`deeplabv3.config.backbones.FAMILIES`) at ``output_stride``.

    ``layers`` / ``base_channels`` (ResNet families only) shrink the ResNet; ``multi_grid`` multiplies layer4's
    block dilations (ResNet families); ``bn_momentum`` / ``bn_eps`` set the ResNets' BatchNorm (other families
    keep MindCV's, which equal the defaults).
    """
    wrapper = _wrapped(name, layers, base_channels, bn_momentum, bn_eps)
    cells = list(wrapper.net.name_cells().items())
    strides = measure_strides(wrapper.net, cells + _convs(wrapper.net))
    last = [i for i in wrapper.return_index if _convs(cells[i][1])][-1]
    points = [_Point(i, cells[i][0], min(strides[cells[i][0]][1], output_stride), channels)
              for i, channels in zip(wrapper.return_index, wrapper.out_channels)
              if i <= last and strides[cells[i][0]][1] >= LOW_LEVEL_STRIDE]
    net = StageOutputs(OrderedDict(cells[:last + 1]), [p.position for p in points])

    grid = None
    if family_of(name) in RESNET_FAMILIES:
        grid = ([f"layer4.{i}." for i in range(len(net.layer4))], tuple(multi_grid))
    apply_dilation(net, plan_dilation(_convs(net), strides, output_stride, "new" if grid else "previous", grid))
    return MindCVBackbone(name, net, points, output_stride, [n for n, _ in cells[last + 1:]])
