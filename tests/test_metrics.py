import math

import numpy as np
import pytest

from rtseg.metrics import ConfusionMatrix, binary_iou


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
