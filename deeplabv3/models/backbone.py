"""The backbone contract: what the DeepLab heads and the inspection tools need from a feature extractor.

A backbone is a cell mapping an N x 3 x H x W image to ``(low_level, high_level)`` features: the stride-4
features DeepLabV3+'s decoder refines (returned by every backbone; unused by DeepLabV3) and the last stage's
features at the output stride, which ASPP reads. The heads size themselves from its channel counts and the
network reports its output stride; nothing above the backbone knows how the backbone reaches that stride.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Protocol, Tuple

from mindspore import Tensor


@dataclass(frozen=True)
class Stage:
    """One stage of a backbone as built: ``stride`` is the reduction of its output relative to the input."""

    name: str
    stride: int
    dilations: Tuple[int, ...]  # one per block
    channels: int
    params: int

    @property
    def blocks(self) -> int:
        return len(self.dilations)


class Backbone(Protocol):
    """The interface :class:`~deeplabv3.models.deeplab.DeepLabV3` and ``DeepLabV3Plus`` are built on."""

    low_level_channels: int  # channels of the stride-4 features
    out_channels: int  # channels of the last stage's features
    output_stride: int  # input size / size of the last stage's features
    low_index: int  # position of the stride-4 features in stage_features()

    def __call__(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``(low_level, high_level)`` features of an image batch."""

    def stages(self) -> List[Stage]:
        """Every stage in order, for inspection (``tools/inspect_model.py``)."""

    def stage_features(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The output of every stage of :meth:`stages`, in the same order."""
