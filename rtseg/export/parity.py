"""The parity gate: an engine must compute the masks the FP32 eager model computes.

On K frames (generated demo scenes, or real images from --calib DIR), both run on the same
preprocessed input; the gate reports mask agreement %, max logit error and the mIoU of the
engine's masks against eager's, and passes when agreement >= the threshold.
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
from rtseg.models import logits_to_classes


def parity_frames(count: int, calib: str | Path | None = None, seed: int = 2024) -> list:
    """K frames (H, W, 3) uint8 BGR: images of `calib`, or generated road scenes."""
    if calib:
        folder = Path(calib)
        paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise RtsegError(f"--calib {folder}: no images there")
        frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths[:count]]
        return [f for f in frames if f is not None]
    from rtseg.data import synthetic

    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(synthetic.render_scene(rng, 360, 640)[0][:, :, ::-1])
            for _ in range(count)]


@torch.no_grad()
def parity_gate(reference: nn.Module, engine, frames: list, preprocess, num_classes: int,
                threshold: float = 99.0, batch: int = 1) -> dict:
    """Compare `engine` (a Backend) with `reference` (FP32 eager, CPU) frame by frame.

    preprocess: (H, W, 3) uint8 BGR -> (1, 3, h, w) float32 CPU tensor. Frames are grouped
    into batches of `batch` (the engine's static batch). Returns the figures and `passed`.
    """
    cm = ConfusionMatrix(max(num_classes, 2))
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
    if total == 0:
        raise RtsegError(f"the parity gate needs at least {batch} frames")
    agreement = 100.0 * agree / total
    return {"frames": total // (x.shape[-1] * x.shape[-2]), "mask_agreement_pct": agreement,
            "max_logit_error": max_error, "miou_vs_eager": cm.compute().miou,
            "threshold_pct": threshold, "passed": agreement >= threshold}
