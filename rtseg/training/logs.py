"""What a training run leaves beside its checkpoint: CSV log, curves PNG, overlay grids."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class CsvLog:
    """Appends one row per evaluation round to `path`; columns fixed by the first row."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        if resume and path.is_file():
            with open(path, newline="") as fh:
                self.rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]

    def append(self, row: dict) -> None:
        """Add a row (numbers or strings) and rewrite the file."""
        self.rows.append({k: v.item() if hasattr(v, "item") else v for k, v in row.items()})
        fields = list(self.rows[0])
        with open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)


def plot_curves(rows: Sequence[dict], path: Path) -> None:
    """Training/validation loss and val mIoU / drivable IoU against step, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(steps, [r["train_loss"] for r in rows], label="train loss")
    left.plot(steps, [r["val_loss"] for r in rows], label="val loss")
    left.set_xlabel("step")
    left.legend()
    right.plot(steps, [r["val_miou"] for r in rows], label="val mIoU")
    right.plot(steps, [r["val_drivable_iou"] for r in rows], label="val drivable IoU")
    right.set_xlabel("step")
    right.set_ylim(0, 1)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def overlay(image: np.ndarray, classes: np.ndarray, palette: np.ndarray,
            alpha: float = 0.5) -> np.ndarray:
    """image (H, W, 3) uint8 RGB + classes (H, W) int -> (H, W, 3) uint8 RGB blend.

    Values outside the palette (ignore) leave the image as it is.
    """
    known = classes < len(palette)
    colours = palette[np.where(known, classes, 0)]
    blend = (image * (1 - alpha) + colours * alpha).astype(np.uint8)
    return np.where(known[..., None], blend, image)


def overlay_grid(images: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                 preds: Sequence[np.ndarray], palette: np.ndarray, path: Path) -> None:
    """One row per image: image | ground-truth overlay | prediction overlay, saved as PNG."""
    import cv2

    rows = [np.concatenate([img, overlay(img, t, palette), overlay(img, p, palette)], axis=1)
            for img, t, p in zip(images, truths, preds)]
    width = max(r.shape[1] for r in rows)
    rows = [cv2.resize(r, (width, round(r.shape[0] * width / r.shape[1]))) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value
