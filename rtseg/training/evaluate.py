"""Evaluation of a model on a data set: confusion matrix -> metrics, plus drivable IoU."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from rtseg.metrics import ConfusionMatrix
from rtseg.models import logits_to_classes, resize_logits


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, classes: Sequence[str],
             drivable_ids: Sequence[int], ignore_index: int = 255,
             device: str | torch.device = "cpu", loss_fn=None, world=None) -> dict:
    """Score `model` on batches of (images (N,3,h,w) float, masks (N,H,W) int64).

    Logits are upsampled to label resolution before the argmax (and the loss). Under
    torchrun each rank scores its share and the counts are summed over ranks. Returns
    miou, per-class iou/accuracy keyed by class name, pixel_accuracy, mean_accuracy,
    drivable_iou, images, and loss when `loss_fn` is given.
    """
    from rtseg.training.distributed import World, sum_across

    world = world or World()
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(len(classes), ignore_index)
    drivable = ConfusionMatrix(2, ignore_index)
    lut = drivable_lut(len(classes), drivable_ids, ignore_index)
    totals = np.zeros(2)  # loss sum, images
    for x, y in batches:
        logits = upsampled_logits(model, x.to(device), y.shape[-2:])
        pred = logits_to_classes(logits).cpu()
        cm.update(pred, y)
        drivable.update(lut[pred.numpy()], lut[y.numpy().clip(0, 255)])
        if loss_fn is not None:
            totals[0] += float(loss_fn(logits.float(), y.to(device))) * x.shape[0]
        totals[1] += x.shape[0]
    model.train(was_training)
    cm.matrix = sum_across(world, cm.matrix)
    drivable.matrix = sum_across(world, drivable.matrix)
    totals = sum_across(world, totals)
    result = cm.compute().as_dict(classes)
    result["drivable_iou"] = drivable.compute().iou[1]
    result["images"] = int(totals[1])
    if loss_fn is not None:
        result["loss"] = float(totals[0] / max(1.0, totals[1]))
    return result


def upsampled_logits(model: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """x (N,3,h,w) -> logits (N,C,H,W) at `size`, bilinear, channels-last."""
    return resize_logits(model(x), size)


def predict_classes(model: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """x (N,3,h,w) float -> class map (N,H,W) int64 at `size` (H, W); bilinear logits."""
    return logits_to_classes(upsampled_logits(model, x, size))


def drivable_lut(num_classes: int, drivable_ids: Sequence[int], ignore_index: int) -> np.ndarray:
    """(256,) uint8 table: class index -> 1 if drivable else 0; ignore_index and values
    without a class map to ignore_index (so they are skipped)."""
    lut = np.full(256, ignore_index if 0 <= ignore_index < 256 else 255, dtype=np.uint8)
    lut[:num_classes] = 0
    lut[list(drivable_ids)] = 1
    return lut


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
