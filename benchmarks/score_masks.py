"""Independent scorer: predicted class-index PNGs against label PNGs, matched by file stem.

Imports nothing from rtseg (numpy + Pillow only), so it checks `rtseg predict` from outside:

    python benchmarks/score_masks.py PRED_DIR LABEL_DIR --classes 11 --ignore 11 [--json]

Per-class IoU = TP / (TP + FP + FN) over all pixels of all images, labels equal to --ignore
(or >= --classes) skipped; mIoU is the mean over classes present in the labels or the
predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def confusion(pred_dir: Path, label_dir: Path, classes: int, ignore: int) -> np.ndarray:
    """(classes, classes) counts, rows = label, columns = prediction."""
    labels = sorted(label_dir.glob("*.png"))
    if not labels:
        sys.exit(f"no label PNGs in {label_dir}")
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for label_path in labels:
        pred_path = pred_dir / label_path.name
        if not pred_path.is_file():
            sys.exit(f"missing prediction {pred_path}")
        label = np.array(Image.open(label_path)).astype(np.int64)
        pred = np.array(Image.open(pred_path)).astype(np.int64)
        if label.shape != pred.shape:
            sys.exit(f"{pred_path}: size {pred.shape} but the label is {label.shape}")
        keep = (label != ignore) & (label < classes)
        matrix += np.bincount(label[keep] * classes + np.clip(pred[keep], 0, classes - 1),
                              minlength=classes * classes).reshape(classes, classes)
    return matrix


def main() -> None:
    parser = argparse.ArgumentParser(description="Score predicted masks against labels.")
    parser.add_argument("pred_dir", type=Path)
    parser.add_argument("label_dir", type=Path)
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("--ignore", type=int, default=255)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    m = confusion(args.pred_dir, args.label_dir, args.classes, args.ignore)
    tp = np.diag(m).astype(float)
    union = m.sum(0) + m.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    result = {"miou": float(np.nanmean(iou)), "pixel_accuracy": float(tp.sum() / m.sum()),
              "iou": [None if np.isnan(v) else float(v) for v in iou], "pixels": int(m.sum())}
    if args.json:
        print(json.dumps(result))
        return
    for i, v in enumerate(result["iou"]):
        print(f"class {i:3d}  IoU {'n/a' if v is None else f'{100 * v:6.2f}'}")
    print(f"mIoU {100 * result['miou']:.2f}  pixel accuracy {100 * result['pixel_accuracy']:.2f}")


if __name__ == "__main__":
    main()
