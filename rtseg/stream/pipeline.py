"""Frame -> masks: preprocess (resize, BGR->RGB, normalise), infer, postprocess.

Post-processing upsamples logits bilinearly to the frame size before the argmax, so mask
edges are as good as the network allows at the source resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from rtseg.backends.base import Backend
from rtseg.backends.preprocess import Preprocessor
from rtseg.models import logits_to_classes, resize_logits


@dataclass(frozen=True)
class Masks:
    """classes (H, W) uint8 class index; drivable (H, W) uint8 0/1; stage times in ms."""

    classes: np.ndarray
    drivable: np.ndarray
    timings_ms: dict


class Pipeline:
    """Runs one backend on BGR frames of any size, returning masks at the frame's size."""

    def __init__(self, backend: Backend):
        spec = backend.spec
        self.backend = backend
        self.spec = spec
        self._prepare = Preprocessor(spec.input_size, spec.mean, spec.std)
        lut = np.zeros(256, dtype=np.uint8)
        lut[list(spec.drivable_ids)] = 1
        self._drivable_lut = lut

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 BGR -> (1, 3, h, w) float32 normalised RGB on the backend's device."""
        return self._prepare(image).to(self.backend.device, non_blocking=True)

    def postprocess(self, logits: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray,
                                                                               np.ndarray]:
        """logits (1, C, h, w) -> classes (H, W) uint8 and drivable (H, W) uint8 at `size`.

        Channels-last layout keeps the C values of a pixel adjacent: the argmax over C is
        then ~15x faster on a CPU than over an NCHW tensor (2.6 vs 41 ms at 360x640).
        """
        classes = logits_to_classes(resize_logits(logits, size))[0].to(torch.uint8).cpu().numpy()
        return classes, self._drivable_lut[classes]

    def __call__(self, image: np.ndarray) -> Masks:
        """(H, W, 3) uint8 BGR -> Masks at (H, W), with pre/infer/post times."""
        t0 = time.perf_counter()
        x = self.preprocess(image)
        t1 = time.perf_counter()
        logits = self.backend(x)
        if logits.device.type == "cuda":
            torch.cuda.synchronize(logits.device)
        t2 = time.perf_counter()
        classes, drivable = self.postprocess(logits, image.shape[:2])
        t3 = time.perf_counter()
        timings = {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}
        return Masks(classes=classes, drivable=drivable, timings_ms=timings)
