"""Segmentation metrics from one confusion matrix accumulated over the whole data set.

The published mIoU is computed from a single matrix summed over every pixel of every image (not a mean of
per-image IoUs), so the matrix is the only state: it is summed across ranks and across data-set shards, and every
figure is derived from it at the end.

Conventions: rows are ground truth, columns are predictions; pixels whose label is the ignore label are skipped.
A class that occurs neither in the labels nor in the predictions has an undefined IoU (0 / 0); it is NaN and left
out of the mean, so a class absent from the evaluation set does not pull mIoU down. A class predicted but never
present in the labels has IoU 0 (its false positives count) and an undefined accuracy.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np


class ConfusionMatrix:
    """``num_classes x num_classes`` pixel counts (int64), ground truth by row, prediction by column."""

    def __init__(self, num_classes: int, ignore_label: int = 255, matrix: Optional[np.ndarray] = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        if matrix is None:
            self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        else:
            matrix = np.asarray(matrix)
            if matrix.shape != (num_classes, num_classes):
                raise ValueError(f"confusion matrix has shape {matrix.shape}, expected "
                                 f"({num_classes}, {num_classes})")
            self.matrix = np.rint(matrix).astype(np.int64) if matrix.dtype.kind == "f" else matrix.astype(np.int64)

    # ------------------------------------------------------------------------------------------- accumulation

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Count the pixels of one prediction against its label (same shape; ignore-label pixels skipped)."""
        pred = np.asarray(pred)
        label = np.asarray(label)
        if pred.shape != label.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from label shape {label.shape}")
        valid = label != self.ignore_label
        gt = label[valid].astype(np.int64)
        pr = pred[valid].astype(np.int64)
        if gt.size == 0:
            return
        n = self.num_classes
        for name, values in (("label", gt), ("prediction", pr)):
            low, high = int(values.min()), int(values.max())
            if low < 0 or high >= n:
                bad = low if low < 0 else high
                raise ValueError(f"{name} value {bad} is outside [0, {n - 1}] and not the ignore label "
                                 f"{self.ignore_label}; check model.num_classes")
        self.matrix += np.bincount(gt * n + pr, minlength=n * n).reshape(n, n)

    # ------------------------------------------------------------------------------------------------ figures

    @property
    def total(self) -> int:
        """Number of counted (non-ignored) pixels."""
        return int(self.matrix.sum())

    def iou(self) -> np.ndarray:
        """Per-class intersection over union; NaN for a class in neither labels nor predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def class_accuracy(self) -> np.ndarray:
        """Per-class recall (correct pixels / labelled pixels); NaN for a class absent from the labels."""
        tp = np.diag(self.matrix).astype(np.float64)
        support = self.matrix.sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(support > 0, tp / support, np.nan)

    def pixel_accuracy(self) -> float:
        """aAcc: correct pixels over all counted pixels (NaN when nothing was counted)."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def mean_iou(self) -> float:
        """mIoU: the mean of the defined per-class IoUs."""
        return _nanmean(self.iou())

    def mean_accuracy(self) -> float:
        """mAcc: the mean of the defined per-class accuracies."""
        return _nanmean(self.class_accuracy())

    def frequency_weighted_iou(self) -> float:
        """fwIoU: per-class IoU weighted by the class's share of the labelled pixels."""
        total = self.total
        if not total:
            return float("nan")
        freq = self.matrix.sum(1) / total
        iou = self.iou()
        present = freq > 0
        return float(np.sum(freq[present] * iou[present]))

    def summary(self) -> Dict[str, object]:
        """All figures as fractions in [0, 1] (NaN where undefined), per-class ones as arrays."""
        return {
            "aAcc": self.pixel_accuracy(),
            "mIoU": self.mean_iou(),
            "mAcc": self.mean_accuracy(),
            "fwIoU": self.frequency_weighted_iou(),
            "IoU": self.iou(),
            "Acc": self.class_accuracy(),
        }


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")
