"""Evaluation of a model on a data set: confusion matrix -> metrics, plus drivable IoU."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

import numpy as np
import torch
from torch import nn

from rtseg.metrics import ConfusionMatrix, drivable_scoring_lut
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
    lut = drivable_scoring_lut(len(classes), drivable_ids, ignore_index)
    loss_sum, images = 0.0, 0
    for x, y in batches:
        logits = upsampled_logits(model, x.to(device), y.shape[-2:])
        pred = logits_to_classes(logits).cpu()
        cm.update(pred, y)
        drivable.update(lut[pred.numpy()], lut[y.numpy().clip(0, 255)])
        if loss_fn is not None:
            loss_sum += float(loss_fn(logits.float(), y.to(device))) * x.shape[0]
        images += x.shape[0]
    model.train(was_training)
    ranks_sum = partial(sum_across, world)
    cm.reduce(ranks_sum)
    drivable.reduce(ranks_sum)
    loss_sum, images = ranks_sum(np.array([loss_sum, images], dtype=np.float64))
    result = cm.compute().as_dict(classes)
    result["drivable_iou"] = drivable.compute().iou[1]
    result["images"] = int(images)
    if loss_fn is not None:
        result["loss"] = float(loss_sum / max(1.0, images))
    return result


def upsampled_logits(model: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """x (N,3,h,w) -> logits (N,C,H,W) at `size`, bilinear, channels-last."""
    return resize_logits(model(x), size)


def predict_classes(model: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """x (N,3,h,w) float -> class map (N,H,W) int64 at `size` (H, W); bilinear logits."""
    return logits_to_classes(upsampled_logits(model, x, size))


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
