"""Segmentation metrics from one confusion matrix.

Every figure (per-class IoU, mIoU, mean accuracy, pixel accuracy) is derived from a (C, C)
matrix filled with a single `bincount` per batch; drivable IoU from a (2, 2) one, after the
class ids pass through `drivable_scoring_lut`. `drivable_lut` is the one class id ->
drivable table of the package (pipeline masks, synthetic labels, scoring).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegMetrics:
    """Figures derived from a confusion matrix; NaN where a class never occurs."""

    iou: tuple[float, ...]
    accuracy: tuple[float, ...]
    miou: float
    mean_accuracy: float
    pixel_accuracy: float

    def as_dict(self, class_names: Sequence[str] | None = None) -> dict:
        """JSON-friendly dict; per-class values keyed by name when names are given."""
        names = list(class_names) if class_names else [str(i) for i in range(len(self.iou))]
        return {
            "miou": self.miou,
            "mean_accuracy": self.mean_accuracy,
            "pixel_accuracy": self.pixel_accuracy,
            "iou": dict(zip(names, self.iou)),
            "accuracy": dict(zip(names, self.accuracy)),
        }


class ConfusionMatrix:
    """Accumulates a (C, C) confusion matrix, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred, target) -> None:
        """Add a batch. pred, target: integer arrays or tensors of one shape, e.g. (N, H, W).

        Pixels whose target is `ignore_index` (or outside [0, C)) are skipped.
        """
        pred = _as_numpy(pred).reshape(-1).astype(np.int64)
        target = _as_numpy(target).reshape(-1).astype(np.int64)
        if pred.shape != target.shape:
            raise ValueError(f"pred has {pred.size} pixels but target has {target.size}")
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        keep &= (pred >= 0) & (pred < self.num_classes)
        c = self.num_classes
        counts = np.bincount(c * target[keep] + pred[keep], minlength=c * c)
        self.matrix += counts.reshape(c, c)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix of the same size (e.g. from another process)."""
        self.matrix += other.matrix

    def reduce(self, sum_fn: Callable[[np.ndarray], np.ndarray]) -> None:
        """Replace the (C, C) int64 counts by `sum_fn(counts)`, e.g. their sum over the
        torchrun ranks; the result must keep the shape."""
        summed = np.asarray(sum_fn(self.matrix), dtype=np.int64)
        if summed.shape != self.matrix.shape:
            raise ValueError(f"reduced counts have shape {summed.shape}, not "
                             f"{self.matrix.shape}")
        self.matrix = summed

    def compute(self) -> SegMetrics:
        """Per-class IoU and accuracy, their means over classes that occur, pixel accuracy."""
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt = m.sum(axis=1)
        pr = m.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / (gt + pr - tp)
            acc = tp / gt
        total = m.sum()
        return SegMetrics(
            iou=tuple(float(x) for x in iou),
            accuracy=tuple(float(x) for x in acc),
            miou=float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            mean_accuracy=float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
            pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
        )


def drivable_lut(drivable_ids: Sequence[int]) -> np.ndarray:
    """(256,) uint8 lookup table: class id -> 1 if drivable, else 0.

    `lut[classes]` (or `cv2.LUT(classes, lut)`) turns an (H, W) uint8 class map into the
    (H, W) uint8 drivable mask.
    """
    lut = np.zeros(256, dtype=np.uint8)
    lut[list(drivable_ids)] = 1
    return lut


def drivable_scoring_lut(num_classes: int, drivable_ids: Sequence[int],
                         ignore_index: int = 255) -> np.ndarray:
    """(256,) uint8 table for scoring drivable IoU on ground truth: 1 drivable, 0 any other
    class, and ignore_index (255 when it is not a byte) for ids without a class, so a
    two-class ConfusionMatrix with that ignore_index skips them."""
    lut = drivable_lut(drivable_ids)
    lut[num_classes:] = ignore_index if 0 <= ignore_index < 256 else 255
    return lut


def binary_iou(pred, target, ignore=None) -> float:
    """IoU of two 0/1 masks of one shape, e.g. (H, W); `ignore` marks pixels to skip."""
    pred = _as_numpy(pred).astype(bool)
    target = _as_numpy(target).astype(bool)
    if ignore is not None:
        keep = ~_as_numpy(ignore).astype(bool)
        pred, target = pred[keep], target[keep]
    union = np.logical_or(pred, target).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, target).sum() / union)


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
