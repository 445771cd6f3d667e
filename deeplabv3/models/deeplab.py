"""DeepLabV3 and DeepLabV3+ on a backbone and an ASPP, and the inference wrapper.

Both networks take NCHW float32 images (normalised BGR) and return class logits at the input size, upsampled
bilinearly with ``align_corners=True`` as the published networks do. The upsampling is a parameter-free
``resize`` cell, so an exporter can swap in an equivalent that its target format supports. The networks are
built from explicit arguments (:func:`~deeplabv3.models.factory.build_model` reads the config) and carry the
``output_stride`` of their backbone, which evaluation records and export checks input sizes against.
"""
from __future__ import annotations

from typing import Optional, Tuple

import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import Tensor

from .aspp import ASPP
from .backbone import Backbone
from .layers import Resize, batch_norm, classifier, conv2d

OUTPUTS = ("probs", "logits", "labels")


class DeepLabV3(nn.Cell):
    """Backbone -> ASPP -> 1x1 classifier (``conv``, with bias) -> bilinear upsample to the input size."""

    head_prefixes: Tuple[str, ...] = ("conv.",)

    def __init__(self, backbone: Backbone, aspp: ASPP, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.aspp = aspp
        self.conv = classifier(aspp.out_channels, num_classes, has_bias=True)
        self.resize = Resize("bilinear")
        self.output_stride = backbone.output_stride

    def construct(self, x: Tensor) -> Tensor:
        low_level, features = self.backbone(x)
        return self.head(x, low_level, features)

    def head(self, x: Tensor, low_level: Tensor, features: Tensor) -> Tensor:
        """Logits at the size of ``x`` from the backbone's features (a training wrapper reuses them)."""
        return self.resize(self.conv(self.aspp(features)), (x.shape[2], x.shape[3]))


class Decoder(nn.Cell):
    """DeepLabV3+ decoder: ASPP output resized onto projected low-level features, two 3x3 refinements, classifier.

    The ASPP output is resized by nearest neighbour with ``align_corners=True``, as in the published network.
    """

    def __init__(self, low_level_in: int, low_level_channels: int, aspp_channels: int, num_classes: int,
                 bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.conv1 = conv2d(low_level_in, low_level_channels, 1)
        self.bn1 = batch_norm(low_level_channels, bn_momentum, bn_eps)
        self.relu = nn.ReLU()
        self.last_conv = nn.SequentialCell([
            conv2d(aspp_channels + low_level_channels, aspp_channels, 3),
            batch_norm(aspp_channels, bn_momentum, bn_eps),
            nn.ReLU(),
            conv2d(aspp_channels, aspp_channels, 3),
            batch_norm(aspp_channels, bn_momentum, bn_eps),
            nn.ReLU(),
            classifier(aspp_channels, num_classes, has_bias=False),
        ])
        self.resize = Resize("nearest")

    def construct(self, x: Tensor, low_level: Tensor) -> Tensor:
        low_level = self.relu(self.bn1(self.conv1(low_level)))
        x = self.resize(x, (low_level.shape[2], low_level.shape[3]))
        return self.last_conv(ops.cat((x, low_level), 1))


class DeepLabV3Plus(nn.Cell):
    """Backbone -> ASPP -> :class:`Decoder` with the low-level features -> bilinear upsample to the input size.

    ``low_level_channels`` is the width the backbone's stride-4 features are projected to (48 in the paper).
    """

    head_prefixes: Tuple[str, ...] = ("decoder.last_conv.6.",)

    def __init__(self, backbone: Backbone, aspp: ASPP, num_classes: int, low_level_channels: int = 48,
                 bn_momentum: float = 0.9, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.backbone = backbone
        self.aspp = aspp
        self.decoder = Decoder(backbone.low_level_channels, low_level_channels, aspp.out_channels, num_classes,
                               bn_momentum, bn_eps)
        self.resize = Resize("bilinear")
        self.output_stride = backbone.output_stride

    def construct(self, x: Tensor) -> Tensor:
        low_level, features = self.backbone(x)
        return self.head(x, low_level, features)

    def head(self, x: Tensor, low_level: Tensor, features: Tensor) -> Tensor:
        """Logits at the size of ``x`` from the backbone's features (a training wrapper reuses them)."""
        return self.resize(self.decoder(self.aspp(features), low_level), (x.shape[2], x.shape[3]))


class InferenceNet(nn.Cell):
    """A trained network in inference mode, returning ``probs`` (softmax over classes), ``logits`` or ``labels``.

    ``nhwc=True`` accepts N x H x W x 3 input (what image pipelines produce) and transposes it inside the graph.
    Outputs are N x C x H x W (``labels``: N x H x W int32). The wrapped network is put in inference mode (BN uses
    its running statistics, dropout is off); parameter names are left unchanged.
    """

    def __init__(self, net: nn.Cell, output: str = "probs", nhwc: bool = False) -> None:
        super().__init__(auto_prefix=False)
        if output not in OUTPUTS:
            raise ValueError(f"InferenceNet output {output!r} is not one of {', '.join(OUTPUTS)}")
        self.net = net
        self.output = output
        self.nhwc = nhwc
        self.softmax = nn.Softmax(axis=1)
        self.argmax = ops.Argmax(axis=1, output_type=ms.int32)
        self.set_train(False)

    def construct(self, x: Tensor) -> Tensor:
        if self.nhwc:
            x = ops.transpose(x, (0, 3, 1, 2))
        logits = self.net(x)
        if self.output == "probs":
            return self.softmax(logits)
        if self.output == "labels":
            return self.argmax(logits)
        return logits


def output_stride_of(net: nn.Cell) -> Optional[int]:
    """The output stride of ``net``, or of the DeepLab network it wraps (:class:`InferenceNet`, mixed precision).

    ``None`` for a network that declares none (any cell mapping images to logits at the input size can be
    evaluated).
    """
    for _, cell in net.cells_and_names():
        stride = getattr(cell, "output_stride", None)
        if stride is not None:
            return int(stride)
    return None
