"""Evaluation of a model on a data set: confusion matrix -> metrics, plus drivable IoU."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from rtseg.metrics import ConfusionMatrix


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, classes: Sequence[str],
             drivable_ids: Sequence[int], ignore_index: int = 255,
             device: str | torch.device = "cpu") -> dict:
    """Score `model` on batches of (images (N,3,H,W) float, masks (N,H,W) int64).

    Logits are compared at label resolution. Returns the metrics dict (miou, per-class
    iou/accuracy keyed by class name, pixel_accuracy, mean_accuracy, drivable_iou, images).
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(len(classes), ignore_index)
    drivable = ConfusionMatrix(2, ignore_index)
    lut = drivable_lut(len(classes), drivable_ids, ignore_index)
    images = 0
    for x, y in batches:
        pred = predict_classes(model, x.to(device), y.shape[-2:]).cpu()
        cm.update(pred, y)
        y_np = y.numpy()
        valid = (y_np >= 0) & (y_np < len(classes))
        y_bin = np.where(valid, lut[np.clip(y_np, 0, len(classes) - 1)], ignore_index)
        drivable.update(lut[pred.numpy()], y_bin)
        images += x.shape[0]
    model.train(was_training)
    result = cm.compute().as_dict(classes)
    result["drivable_iou"] = drivable.compute().iou[1]
    result["images"] = images
    return result


def predict_classes(model: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """x (N,3,h,w) float -> class map (N,H,W) int64 at `size` (H, W); bilinear logits."""
    logits = model(x)
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = nn.functional.interpolate(logits, size=tuple(size), mode="bilinear",
                                           align_corners=False)
    return logits.argmax(1)


def drivable_lut(num_classes: int, drivable_ids: Sequence[int], ignore_index: int) -> np.ndarray:
    """(256,) uint8 table: class index -> 1 if drivable else 0 (ignore_index stays ignore)."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[list(drivable_ids)] = 1
    if 0 <= ignore_index < 256 and ignore_index >= num_classes:
        lut[ignore_index] = ignore_index
    return lut


def evaluate_checkpoint(model: str, data, batch_size: int = 8, device: str = "auto") -> dict:
    """Score a checkpoint (path or `demo`) on the val split of `data` (a DataConfig).

    Images are rendered/read at the checkpoint's input size. Returns evaluate()'s dict plus
    `classes`, `checkpoint` and `model`.
    """
    from dataclasses import replace

    from torch.utils.data import DataLoader

    from rtseg.checkpoint import load_checkpoint
    from rtseg.data.datasets import make_datasets
    from rtseg.device import pick_device

    ckpt = load_checkpoint(model)
    h, w = ckpt.meta.input_size
    _, val, info = make_datasets(replace(data, height=h, width=w))
    dev = pick_device(device)
    result = evaluate(ckpt.build(dev), DataLoader(val, batch_size=batch_size), ckpt.meta.classes,
                      ckpt.meta.drivable_ids, ckpt.meta.ignore_index, dev)
    return {**result, "classes": list(ckpt.meta.classes), "checkpoint": str(ckpt.path),
            "model": ckpt.short_id}


def format_metrics(result: dict) -> str:
    """A per-class IoU table followed by the summary figures, for people."""
    lines = [f"{'class':<20} {'IoU':>7} {'acc':>7}"]
    for name, iou in result["iou"].items():
        lines.append(f"{name:<20} {_pct(iou):>7} {_pct(result['accuracy'][name]):>7}")
    lines.append("")
    for key in ("miou", "mean_accuracy", "pixel_accuracy", "drivable_iou"):
        lines.append(f"{key:<20} {_pct(result[key]):>7}")
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.2f}"
