"""Softmax cross-entropy over the labelled pixels of a batch, optionally class-weighted or hard-pixel mined.

The mean is taken over the valid pixels of the *whole batch* (not per image), as in the published recipe, so an
image with few labelled pixels weighs proportionally less. A batch whose pixels are all ``ignore_label`` (a random
crop can land entirely in the void border) has no valid pixel: the loss is then 0 with zero gradients instead of
the reference's 0 / 0 = NaN, which would otherwise count as an overflow and skip the step.

For class imbalance (``loss.*``), every valid pixel ``i`` gets a weight ``p_i = m_i * w[y_i]`` and the loss is
``sum(p_i * nll_i) / sum(p_i)`` (PyTorch's weighted mean):

* ``w`` = ``loss.class_weights``: a list, or derived from the training set's histogram
  (:mod:`deeplabv3.data.statistics`);
* ``m_i`` = 1 for cross-entropy; for ``loss.name: ohem`` mmsegmentation's ``OHEMPixelSampler``: keep the pixels
  whose probability of their true class is below ``max(thresh, the (min_kept * batch)-th smallest such
  probability)``, so at least ``min_kept`` pixels per image stay. With fewer valid pixels than that all of them
  are kept (mmseg's strict ``<`` would drop the easiest one). The selection is not differentiated through, as in
  mmseg.

Without weights or OHEM the loss is exactly the published recipe's.
"""
from __future__ import annotations

from typing import Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from ..config import Config
from ..runtime import get_logger


def _nll(logits: ms.Tensor, labels: ms.Tensor, ignore_label: int):
    """NHWC log-probabilities, per-pixel negative log-likelihood, the valid mask and the labels made safe."""
    logits = ops.transpose(logits.astype(ms.float32), (0, 2, 3, 1))
    labels = labels.astype(ms.int32)
    valid = labels != ignore_label
    safe = ops.select(valid, labels, ops.zeros_like(labels))
    log_prob = ops.log_softmax(logits, axis=-1)
    nll = -ops.gather_elements(log_prob, 3, safe.expand_dims(3)).squeeze(3)
    return nll, valid, safe


class SegmentationCrossEntropy(nn.Cell):
    """``loss(logits N x C x H x W, labels N x H x W int) -> scalar float32``.

    Logits are promoted to float32 first, so a float16 network (amp O2/O3) still sums the loss accurately.
    The log-softmax runs over the last axis of N x H x W x C logits: over NCHW's strided class axis oneDNN falls
    back to its reference softmax-backward kernel on CPU (~0.4 s of a ResNet-101 2 x 513 x 513 step).
    Labels other than ``ignore_label`` must lie in ``[0, C)``; the data pipeline guarantees it.
    """

    def __init__(self, ignore_label: int = 255) -> None:
        super().__init__()
        self.ignore_label = ignore_label

    def construct(self, logits: ms.Tensor, labels: ms.Tensor) -> ms.Tensor:
        nll, valid, _ = _nll(logits, labels, self.ignore_label)
        weights = valid.astype(ms.float32)
        count = weights.sum()
        return (nll * weights).sum() / ops.maximum(count, ops.ones_like(count))


class BalancedSegmentationLoss(nn.Cell):
    """Class-weighted and/or OHEM cross-entropy (see the module docstring); same call as
    :class:`SegmentationCrossEntropy`."""

    def __init__(self, num_classes: int, ignore_label: int = 255, class_weights: Optional[Sequence[float]] = None,
                 ohem: bool = False, thresh: float = 0.7, min_kept: int = 100000) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        weights = np.ones(num_classes, np.float32) if class_weights is None else np.asarray(class_weights, np.float32)
        self.class_weights = ms.Tensor(weights)
        self.ohem = ohem
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)

    def kept(self, logits: ms.Tensor, nll: ms.Tensor, valid: ms.Tensor) -> ms.Tensor:
        """OHEM's selection: valid pixels whose true-class probability is below the threshold (no gradient)."""
        prob = ops.stop_gradient(ops.exp(-nll))
        flat = ops.select(valid, prob, ops.full_like(prob, 2.0)).reshape(-1)  # invalid pixels sort last
        k = min(self.min_kept * logits.shape[0] + 1, flat.shape[0])
        smallest = -ops.topk(-flat, k)[0]  # ascending
        n_valid = valid.astype(ms.int32).sum()
        index = ops.clip_by_value(ops.minimum(n_valid - 1, ms.Tensor(k - 1, ms.int32)), ms.Tensor(0, ms.int32),
                                  ms.Tensor(k - 1, ms.int32))
        threshold = ops.maximum(ops.gather(smallest, index, 0), ms.Tensor(self.thresh, ms.float32))
        few = n_valid <= self.min_kept * logits.shape[0]
        return ops.logical_and(valid, ops.logical_or(prob < threshold, few))

    def construct(self, logits: ms.Tensor, labels: ms.Tensor) -> ms.Tensor:
        nll, valid, safe = _nll(logits, labels, self.ignore_label)
        mask = self.kept(logits, nll, valid) if self.ohem else valid
        weights = ops.stop_gradient(mask.astype(ms.float32) * ops.gather(self.class_weights, safe, 0))
        total = weights.sum()
        safe_total = ops.select(total > 0, total, ops.ones_like(total))
        return (nll * weights).sum() / safe_total


def resolve_class_weights(cfg: Config) -> Optional[list]:
    """``loss.class_weights`` as a list: given, or derived from the training MindRecord's label histogram."""
    weights = cfg.loss.class_weights
    if weights is None or isinstance(weights, list):
        return weights
    from ..data.statistics import class_weights, collect_stats, mindrecord_labels

    stats = collect_stats(mindrecord_labels(cfg.data.train.mindrecord), cfg.model.num_classes, cfg.data.ignore_label)
    derived = class_weights(stats, weights)
    get_logger().info("loss.class_weights %s from %d training labels: %s", weights, stats.num_images,
                      ", ".join(f"{name} {w:.3f}" for name, w in zip(cfg.class_names, derived)))
    return derived


def build_loss(cfg: Config) -> nn.Cell:
    """The training loss ``cfg.loss`` describes (the published recipe's unless weights or OHEM are asked for)."""
    weights = resolve_class_weights(cfg)
    if cfg.loss.name == "cross_entropy" and weights is None:
        return SegmentationCrossEntropy(cfg.data.ignore_label)
    return BalancedSegmentationLoss(cfg.model.num_classes, cfg.data.ignore_label, weights, cfg.loss.name == "ohem",
                                    cfg.loss.ohem_thresh, cfg.loss.ohem_min_kept)
