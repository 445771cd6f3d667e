"""Confusion matrix and the figures derived from it, against matrices worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from deeplabv3.evaluation.metrics import ConfusionMatrix

IGN = 255


def test_matrix_counts_pixels_and_skips_ignore():
    label = np.array([[0, 0, 1, 1],
                      [0, 2, 2, IGN],
                      [1, 1, IGN, IGN]], np.uint8)
    pred = np.array([[0, 1, 1, 1],
                     [0, 2, 0, 2],
                     [1, 0, 2, 0]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(pred, label)
    # rows = ground truth, columns = prediction; 9 labelled pixels
    np.testing.assert_array_equal(cm.matrix, [[2, 1, 0],
                                              [1, 3, 0],
                                              [1, 0, 1]])
    assert cm.total == 9
    # IoU = tp / (row + col - tp): 2/(3+4-2), 3/(4+4-3), 1/(2+1-1)
    np.testing.assert_allclose(cm.iou(), [2 / 5, 3 / 5, 1 / 2])
    np.testing.assert_allclose(cm.class_accuracy(), [2 / 3, 3 / 4, 1 / 2])
    assert cm.pixel_accuracy() == pytest.approx(6 / 9)
    assert cm.mean_iou() == pytest.approx((2 / 5 + 3 / 5 + 1 / 2) / 3)
    assert cm.mean_accuracy() == pytest.approx((2 / 3 + 3 / 4 + 1 / 2) / 3)
    assert cm.frequency_weighted_iou() == pytest.approx(3 / 9 * 2 / 5 + 4 / 9 * 3 / 5 + 2 / 9 * 1 / 2)


def test_absent_class_is_nan_and_excluded_from_means():
    # 4 classes; class 3 is neither labelled nor predicted, class 2 is predicted but never labelled
    label = np.array([0, 0, 1, 1, 1, IGN], np.uint8)
    pred = np.array([0, 2, 1, 1, 0, 3], np.uint8)  # the 3 falls on an ignored pixel
    cm = ConfusionMatrix(4)
    cm.update(pred, label)
    iou = cm.iou()
    assert math.isnan(iou[3])
    assert iou[2] == 0.0  # its false positive counts
    np.testing.assert_allclose(iou[:2], [1 / 3, 2 / 3])
    assert cm.mean_iou() == pytest.approx((1 / 3 + 2 / 3 + 0.0) / 3)
    acc = cm.class_accuracy()
    assert math.isnan(acc[2]) and math.isnan(acc[3])
    assert cm.mean_accuracy() == pytest.approx((1 / 2 + 2 / 3) / 2)
    summary = cm.summary()
    assert summary["mIoU"] == pytest.approx(cm.mean_iou())
    assert math.isnan(summary["IoU"][3])


def test_empty_matrix_figures_are_undefined():
    cm = ConfusionMatrix(3)
    cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), IGN, np.uint8))
    assert cm.total == 0
    assert math.isnan(cm.mean_iou()) and math.isnan(cm.pixel_accuracy()) and math.isnan(cm.frequency_weighted_iou())


def test_one_matrix_over_the_set_is_not_a_mean_of_per_image_ious():
    a_label, a_pred = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])
    b_label, b_pred = np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1])
    cm = ConfusionMatrix(2)
    cm.update(a_pred, a_label)
    cm.update(b_pred, b_label)
    # whole set: class 0 tp 3, fp 1 -> 3/4; class 1 tp 4, fn 1 -> 4/5
    np.testing.assert_allclose(cm.iou(), [3 / 4, 4 / 5])


def test_shard_matrices_summed_as_arrays_rebuild_the_whole_set_matrix():
    """How shards and ranks are combined: their counts are summed as plain arrays (by a collective that may work
    in float) and the matrix is rebuilt from the sum, exactly."""
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 5, (7, 9)) for _ in range(6)]
    preds = [rng.integers(0, 5, (7, 9)) for _ in range(6)]
    for lab in labels:
        lab[rng.random(lab.shape) < 0.2] = IGN
    whole, parts = ConfusionMatrix(5), [ConfusionMatrix(5) for _ in range(3)]
    for i, (p, lab) in enumerate(zip(preds, labels)):
        whole.update(p, lab)
        parts[i % 3].update(p, lab)
    restored = ConfusionMatrix(5, matrix=sum(part.matrix.astype(np.float64) for part in parts))
    assert restored.matrix.dtype == np.int64
    np.testing.assert_array_equal(restored.matrix, whole.matrix)


def test_bad_inputs_are_reported():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="label value 7"):
        cm.update(np.zeros(3, np.uint8), np.array([0, 7, 1], np.uint8))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"shape \(4, 4\), expected \(3, 3\)"):
        ConfusionMatrix(3, matrix=np.zeros((4, 4)))
