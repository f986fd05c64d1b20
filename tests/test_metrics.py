import math

import numpy as np
import pytest

from rtseg.metrics import ConfusionMatrix, binary_iou, drivable_lut, drivable_scoring_lut


def test_confusion_matrix_figures_match_hand_count():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    m = cm.compute()
    assert m.iou == pytest.approx((1 / 3, 3 / 4, 1 / 2))
    assert m.accuracy == pytest.approx((1 / 2, 1.0, 1 / 2))
    assert m.miou == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert m.pixel_accuracy == pytest.approx(5 / 7)
    assert m.mean_accuracy == pytest.approx(2 / 3)


def test_absent_class_is_nan_and_left_out_of_means():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    m = cm.compute()
    assert math.isnan(m.iou[2])
    assert m.miou == 1.0


def test_update_accumulates_and_rejects_shape_mismatch():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    cm.update(np.array([1]), np.array([0]))
    assert cm.matrix.sum() == 3
    with pytest.raises(ValueError, match="pixels"):
        cm.update(np.array([0, 1]), np.array([0]))


def test_binary_iou():
    a = np.array([[1, 1, 0, 0]])
    b = np.array([[1, 0, 0, 1]])
    assert binary_iou(a, b) == pytest.approx(1 / 3)
    assert binary_iou(np.zeros(3), np.zeros(3)) == 1.0
    assert binary_iou(a, b, ignore=np.array([[0, 0, 0, 1]])) == pytest.approx(1 / 2)


def test_reduce_replaces_the_counts_and_checks_the_shape():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    cm.reduce(lambda counts: counts * 3)
    assert cm.matrix.tolist() == [[3, 0], [0, 3]]
    with pytest.raises(ValueError, match="shape"):
        cm.reduce(lambda counts: counts.reshape(-1))


def test_drivable_tables():
    assert drivable_lut([0, 2])[:4].tolist() == [1, 0, 1, 0]
    assert drivable_lut([0, 2])[255] == 0
    scoring = drivable_scoring_lut(3, [0, 2], ignore_index=255)
    assert scoring[:5].tolist() == [1, 0, 1, 255, 255]
    assert scoring[255] == 255
