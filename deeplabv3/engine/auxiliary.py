"""The auxiliary FCN head of mmsegmentation's recipes: extra supervision of the penultimate stage, training only.

``loss.aux_weight > 0`` (mmseg: 0.4) puts an FCN head (3x3 conv, BN, ReLU, dropout 0.1, 1x1 classifier; mmseg's
``FCNHead(num_convs=1)``) on the backbone's penultimate stage (ResNet ``layer3``, stride 16 at OS16) and adds its
cross-entropy, weighted, to the main loss. It exists only around the training network:

* the DeepLab network inside keeps every parameter name; the head's are ``aux_head.*`` (the wrapper adds no
  prefix), saved in the training checkpoints so that ``--resume`` continues it;
* in inference mode the wrapper returns the main logits alone (periodic evaluation scores the real network);
* ``best.ckpt`` holds the network alone, and a checkpoint with ``aux_head.*`` tensors loads into a network
  without the head: they are set aside with a note (:mod:`deeplabv3.models.checkpoint`), so evaluation,
  prediction and export never see it.

The backbone is run once: the wrapper takes every stage's features (``Backbone.stage_features``) and hands the
stride-4 one (``low_index``) and the last to the network's own head (``net.head``), as the network's own forward
does; the auxiliary head reads the entry before the last (ResNet ``layer3``; for backbones with one entry per block,
the block before the last).
"""
from __future__ import annotations

from typing import List, Tuple

import mindspore as ms
from mindspore import nn

from ..config import Config
from ..models.layers import Resize, batch_norm, classifier, conv2d


class FCNHead(nn.Cell):
    """3x3 conv -> BN -> ReLU -> dropout -> 1x1 conv with bias, logits at the feature map's size."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, bn_momentum: float = 0.9,
                 bn_eps: float = 1e-5, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv = conv2d(in_channels, channels, 3)
        self.bn = batch_norm(channels, bn_momentum, bn_eps)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=dropout)
        self.classifier = classifier(channels, num_classes, has_bias=True)

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return self.classifier(self.dropout(self.relu(self.bn(self.conv(x)))))


class _Holder(nn.Cell):
    """Gives the head its ``aux_head.`` names inside a wrapper that adds no prefix."""

    def __init__(self, head: FCNHead) -> None:
        super().__init__()
        self.aux_head = head


class AuxiliaryTrainNet(nn.Cell):
    """``net`` plus the auxiliary head: ``(main, aux)`` logits in training, the main logits in inference."""

    def __init__(self, net: nn.Cell, head: FCNHead) -> None:
        super().__init__(auto_prefix=False)
        self.net = net
        self.holder = _Holder(head)
        self.resize = Resize("bilinear")
        self.output_stride = net.output_stride
        self.low_index = net.backbone.low_index  # the stride-4 entry the network's own forward hands its head

    def construct(self, x: ms.Tensor):
        features = self.net.backbone.stage_features(x)
        main = self.net.head(x, features[self.low_index], features[-1])
        if not self.training:
            return main
        aux = self.resize(self.holder.aux_head(features[-2]), (x.shape[2], x.shape[3]))
        return main, aux

    def auxiliary_parameters(self) -> List[ms.Parameter]:
        return list(self.holder.get_parameters())


class AuxiliaryLoss(nn.Cell):
    """``loss(main) + weight * loss(aux)`` of the ``(main, aux)`` pair the wrapper returns in training."""

    def __init__(self, loss_fn: nn.Cell, weight: float) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self.weight = float(weight)

    def construct(self, outputs: Tuple[ms.Tensor, ms.Tensor], labels: ms.Tensor) -> ms.Tensor:
        main, aux = outputs
        return self.loss_fn(main, labels) + self.weight * self.loss_fn(aux, labels)


def with_auxiliary_head(net: nn.Cell, loss_fn: nn.Cell, cfg: Config) -> Tuple[nn.Cell, nn.Cell, List[ms.Parameter]]:
    """``(training network, loss, extra parameters to checkpoint)``: ``net`` and ``loss_fn`` unchanged unless
    ``loss.aux_weight`` is set."""
    if cfg.loss.aux_weight <= 0:
        return net, loss_fn, []
    model = cfg.model
    head = FCNHead(net.backbone.stages()[-2].channels, model.aspp_channels, model.num_classes, model.bn_momentum,
                   model.bn_eps)
    wrapped = AuxiliaryTrainNet(net, head)
    wrapped.set_train(net.training)  # a new cell starts in inference mode
    return wrapped, AuxiliaryLoss(loss_fn, cfg.loss.aux_weight), wrapped.auxiliary_parameters()
