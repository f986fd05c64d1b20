"""The parity gate: an engine must compute the masks the FP32 eager model computes.

On K frames (generated demo scenes, or real images from --calib DIR), both run on the same
preprocessed input; the gate reports mask agreement %, max logit error and the mIoU of the
engine's masks against eager's, and passes when agreement >= the threshold (default 99 %,
99.5 % for BF16, 97 % for INT8 without labels). With labels (--calib-labels DIR: 8-bit
class-index PNGs named by the images' stems) it also scores both against the labels, as
`rtseg eval` does (logits resized to the label's size), and an INT8 engine passes when its
mIoU is within MAX_MIOU_DROP points of eager's. The gate's frames are the first --frames
images of --calib, which the INT8 calibration also sees: keep a held-out folder for a
figure free of that bias (`rtseg eval` on the engine).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from rtseg.data import IMAGE_SUFFIXES
from rtseg.errors import RtsegError
from rtseg.metrics import ConfusionMatrix
from rtseg.models import logits_to_classes, resize_logits

AGREEMENT_PCT = {"bf16": 99.5, "int8": 97.0}  # default mask-agreement threshold by precision
DEFAULT_AGREEMENT_PCT = 99.0
MAX_MIOU_DROP = {"int8": 1.0}  # mIoU points an engine may lose against labels


def parity_frames(count: int, calib: str | Path | None = None, seed: int = 2024) -> list:
    """K frames (H, W, 3) uint8 BGR: images of `calib`, or generated road scenes."""
    if calib:
        frames = []
        for path in calib_images(calib, count):
            frames.append(cv2.imread(str(path), cv2.IMREAD_COLOR))
            if frames[-1] is None:
                raise RtsegError(f"--calib image {path} could not be decoded")
        return frames
    from rtseg.data import synthetic

    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(synthetic.render_scene(rng, 360, 640)[0][:, :, ::-1])
            for _ in range(count)]


def calib_images(calib: str | Path, count: int) -> list[Path]:
    """The first `count` images of the folder `calib`, sorted by name."""
    folder = Path(calib)
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise RtsegError(f"--calib {folder}: no images there")
    return paths[:count]


def parity_labels(calib: str | Path, labels: str | Path, frames: list) -> list[np.ndarray]:
    """(H, W) uint8 class-index label of each of `frames` (the first images of `calib`):
    `labels/STEM.png`, the size of its image."""
    out = []
    for image, frame in zip(calib_images(calib, len(frames)), frames):
        label, path = read_label(labels, image)
        if label.shape != frame.shape[:2]:
            raise RtsegError(f"--calib-labels: {path} is {label.shape[1]}x{label.shape[0]}, "
                             f"its image {frame.shape[1]}x{frame.shape[0]}")
        out.append(label)
    return out


def read_label(labels: str | Path, image: Path) -> tuple[np.ndarray, Path]:
    """The (H, W) uint8 class-index label of `image` (`labels/STEM.png`) and its path."""
    path = Path(labels) / f"{image.stem}.png"
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise RtsegError(f"--calib-labels: no label {path} for {image.name} (8-bit "
                         "class-index PNGs named by the images' stems)")
    if label.ndim != 2:
        raise RtsegError(f"--calib-labels: {path} has {label.shape[2]} channels; labels "
                         "are 8-bit class-index PNGs (one channel)")
    return label, path


def gate_thresholds(precision: str, threshold: float | None, labelled: bool) -> dict:
    """{threshold_pct, max_miou_drop}: --threshold, else the precision's default agreement
    (an INT8 engine checked against labels: no agreement threshold, its mIoU drop instead)."""
    drop = MAX_MIOU_DROP.get(precision) if labelled else None
    if threshold is None:
        threshold = None if drop is not None else AGREEMENT_PCT.get(precision,
                                                                     DEFAULT_AGREEMENT_PCT)
    return {"threshold_pct": threshold, "max_miou_drop": drop}


@torch.no_grad()
def parity_gate(reference: nn.Module, engine, frames: list, preprocess, num_classes: int,
                threshold: float | None = 99.0, batch: int = 1, labels: list | None = None,
                max_miou_drop: float | None = None, ignore_index: int = 255) -> dict:
    """Compare `engine` (a Backend) with `reference` (FP32 eager, CPU) frame by frame.

    preprocess: (H, W, 3) uint8 BGR -> (1, 3, h, w) float32 CPU tensor. Frames are grouped
    into batches of `batch` (the engine's static batch). labels: (H, W) class index per
    frame, or None. Returns the figures and `passed`.
    """
    cm = ConfusionMatrix(max(num_classes, 2))
    scored = {k: ConfusionMatrix(max(num_classes, 2), ignore_index) for k in ("eager", "engine")}
    agree = total = 0
    max_error = 0.0
    for start in range(0, len(frames) - batch + 1, batch):
        x = torch.cat([preprocess(f) for f in frames[start:start + batch]])
        ref = reference(x).float()
        out = engine(x.to(engine.device)).float().cpu()
        max_error = max(max_error, float((ref - out).abs().max()))
        a, b = logits_to_classes(ref), logits_to_classes(out)
        agree += int((a == b).sum())
        total += a.numel()
        cm.update(b, a)
        for i, label in enumerate(labels[start:start + batch] if labels else ()):
            for key, logits in (("eager", ref), ("engine", out)):
                pred = logits_to_classes(resize_logits(logits[i:i + 1], label.shape))
                scored[key].update(pred[0], label)
    if total == 0:
        raise RtsegError(f"the parity gate needs at least {batch} frames")
    figures = {"frames": total // (x.shape[-1] * x.shape[-2]),
               "mask_agreement_pct": 100.0 * agree / total, "max_logit_error": max_error,
               "miou_vs_eager": cm.compute().miou, "threshold_pct": threshold}
    if labels:
        eager, mine = (100.0 * scored[k].compute().miou for k in ("eager", "engine"))
        figures.update(miou_eager=eager, miou_engine=mine, miou_drop=eager - mine,
                       max_miou_drop=max_miou_drop)
    figures["passed"] = _passed(figures)
    return figures


def _passed(figures: dict) -> bool:
    if figures["threshold_pct"] is not None and (figures["mask_agreement_pct"]
                                                 < figures["threshold_pct"]):
        return False
    drop = figures.get("max_miou_drop")
    return drop is None or figures["miou_drop"] <= drop


def describe_failure(figures: dict) -> str:
    """Why the gate failed, in one phrase with the figures and the thresholds."""
    parts = []
    if figures["threshold_pct"] is not None and (figures["mask_agreement_pct"]
                                                 < figures["threshold_pct"]):
        parts.append(f"masks agree on {figures['mask_agreement_pct']:.2f}% of pixels, below "
                     f"{figures['threshold_pct']}%")
    if figures.get("max_miou_drop") is not None and (figures["miou_drop"]
                                                     > figures["max_miou_drop"]):
        parts.append(f"mIoU {figures['miou_engine']:.2f} against the labels is "
                     f"{figures['miou_drop']:.2f} points below eager's "
                     f"{figures['miou_eager']:.2f} (at most {figures['max_miou_drop']})")
    return "; ".join(parts)
