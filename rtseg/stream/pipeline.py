"""Frames -> masks on the CPU (or any backend driven from the host): preprocess, infer,
postprocess, as two calls so a node can overlap them on two threads.

`submit(images)` preprocesses a batch and runs the engine on the calling thread;
`InFlight.result()` reduces the logits to masks, typically on the publishing thread, while
the next batch is already being inferred. `pipeline(image)` does both for one frame.

Post-processing, `upsample`:
- "logits" (default; eval and predict): logits are resized bilinearly to the frame size,
  then the argmax is taken, so edges are as good as the network allows at frame size.
- "classes" (the CPU node): the argmax at the network's resolution, then a nearest resize
  of the class map to the frame size and the drivable mask (`drivable_mask`): far cheaper than
  resizing C channels of logits, with masks that differ only along class edges (timings:
  benchmarks/results/cpu-design-timings.md). A backend with `fused_argmax` (OpenVINO)
  returns the class map from the engine itself; otherwise OpenCV takes the argmax on the
  posting thread (one thread). A backend with `fused_preprocess` too (OpenVINO) takes the
  uint8 frames and normalises them itself: the node's thread only resizes them.
Overlap: by default (`slots` 2) the node posts and publishes a batch on its publishing
thread while the next one is inferred; with `overlap=False` (`slots` 1) it runs pre, infer,
post and publish one after the other (the node's `--overlap on | off`). Beside an engine
whose threads fill every core neither is reliably faster on this 2-core machine
(benchmarks/overlap.py, results/cpu-overlap-*.md).
The CUDA node uses `rtseg.stream.cuda_pipeline`, which resizes logits on the GPU.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from rtseg.backends.base import Backend
from rtseg.backends.preprocess import Preprocessor, frames_batch
from rtseg.metrics import drivable_lut
from rtseg.models import logits_to_classes, resize_logits

UPSAMPLE_MODES = ("logits", "classes")



@dataclass(frozen=True)
class Masks:
    """classes (H, W) uint8 class index; drivable (H, W) uint8 0/1; stage times in ms
    (of the batch the frame was in: pre, infer, post, and on CUDA h2d, d2h)."""

    classes: np.ndarray
    drivable: np.ndarray
    timings_ms: dict = field(default_factory=dict)


def argmax_channels(logits: np.ndarray) -> np.ndarray:
    """(C, H, W) float32 -> (H, W) uint8 index of the largest channel, the first one on
    ties; C == 1 is a binary model: 1 where the logit is > 0.

    A running maximum over the channels in OpenCV's SIMD kernels: per channel c, a mask of
    the pixels where c beats the best so far, and index = max(index, mask & c) (c grows, so
    that is "c where the mask is set"); its cost does not depend on the data.
    """
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    if logits.shape[0] == 1:
        return (logits[0] > 0).astype(np.uint8)
    best = logits[0].copy()
    index = np.zeros(best.shape, dtype=np.uint8)
    mask = np.empty(best.shape, dtype=np.uint8)
    for c in range(1, logits.shape[0]):
        cv2.compare(logits[c], best, cv2.CMP_GT, dst=mask)
        cv2.max(best, logits[c], dst=best)
        cv2.bitwise_and(mask, c, dst=mask)
        cv2.max(index, mask, dst=index)
    return index


@functools.lru_cache(maxsize=16)
def _nearest_rows(src_h: int, dst_h: int) -> np.ndarray:
    """(dst_h,) source row of each output row, as OpenCV's INTER_NEAREST picks them (taken
    from OpenCV itself: a column of row numbers resized)."""
    column = np.repeat(np.arange(src_h, dtype=np.uint16)[:, None], 2, axis=1)
    rows = cv2.resize(column, (2, dst_h), interpolation=cv2.INTER_NEAREST)[:, 0]
    return rows.astype(np.intp)


def resize_classes(classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 class map -> (H, W), the same pixels as OpenCV's INTER_NEAREST resize.

    Nearest resizing is separable, so where the map grows in height its rows are resized
    once each and then repeated (a row copy per output row): 0.55 against 0.88 ms for a
    512x1024 map to 1080p on one thread, 0.02 against 0.14 ms for 352x480 to 360x480.
    A map that shrinks in height goes to OpenCV directly (there that is the faster way).
    """
    h, w = classes.shape
    if size[0] < h:
        return cv2.resize(classes, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    if size[1] != w:
        classes = cv2.resize(classes, (size[1], h), interpolation=cv2.INTER_NEAREST)
    return classes[_nearest_rows(h, size[0])]


def drivable_mask(classes: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """(H, W) uint8 class map -> (H, W) uint8 mask, 1 where the class is drivable: one SIMD
    compare per drivable id for up to four ids (cv2.LUT is a scalar gather, ~5x slower on
    a 1080p map), else the lookup table `rtseg.metrics.drivable_lut(ids)`."""
    if not ids or len(ids) > 4:
        return cv2.LUT(classes, drivable_lut(ids))
    mask = classes == ids[0]
    for i in ids[1:]:
        mask |= classes == i
    return mask.view(np.uint8)


def infer_in_chunks(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    static_batch: int | None) -> torch.Tensor:
    """(N, 3, h, w) -> run's output for N frames ((N, C, h, w) logits for a backend, (N, h, w)
    classes for its `classes`); an engine with a static batch B runs chunks of B, the last
    one padded by repeating its final frame."""
    if static_batch is None or x.shape[0] == static_batch:
        return run(x)
    outs = []
    for start in range(0, x.shape[0], static_batch):
        chunk = x[start:start + static_batch]
        real = chunk.shape[0]
        if real < static_batch:
            chunk = torch.cat([chunk, chunk[-1:].expand(static_batch - real, -1, -1, -1)])
        outs.append(run(chunk)[:real])
    return torch.cat(outs)


class InFlight:
    """A submitted batch: the engine's output (logits (N, C, h, w), or (N, h, w) uint8
    classes from a fused argmax) waiting to become N Masks."""

    def __init__(self, pipeline: Pipeline, output: torch.Tensor, sizes: list[tuple[int, int]],
                 timings: dict):
        self._pipeline, self._output, self._sizes, self._timings = pipeline, output, sizes, timings

    def result(self) -> list[Masks]:
        """Masks of each frame, at that frame's size (adds the `post` time)."""
        t0 = time.perf_counter()
        pairs = [self._pipeline.postprocess(self._output[i:i + 1], size)
                 for i, size in enumerate(self._sizes)]
        timings = {**self._timings, "post": (time.perf_counter() - t0) * 1e3}
        return [Masks(classes, drivable, timings) for classes, drivable in pairs]

    def release(self) -> None:
        """Nothing to give back on the host path (the CUDA path reuses buffers)."""


class Pipeline:
    """Runs one backend on BGR frames of any size, returning masks at each frame's size.

    OpenCV's kernels are set to one thread (`cv2.setNumThreads(1)`, process-wide) so that
    the engine keeps the cores: beside a multi-threaded engine, post-processing is faster on
    one thread than competing with it. `slots`: 2 with `overlap` (one batch inferring on
    the submitting thread, one being posted), else 1 (the node waits for each batch's
    masks to be published before it submits the next). `mask_size` (H, W): masks come at
    that size whatever the frame's (None: at each frame's own size).
    """

    def __init__(self, backend: Backend, upsample: str = "logits", overlap: bool = True,
                 mask_size: tuple[int, int] | None = None):
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        cv2.setNumThreads(1)
        self.slots = 2 if overlap else 1
        self.mask_size = None if mask_size is None else tuple(mask_size)
        self.backend = backend
        self.spec = backend.spec
        self.upsample = upsample
        self._prepare = Preprocessor(self.spec.input_size, self.spec.mean, self.spec.std)
        self._drivable_ids = tuple(int(i) for i in self.spec.drivable_ids)
        self._static_batch = backend.static_batch
        fused = upsample == "classes" and backend.fused_argmax
        self._frames_in = fused and backend.fused_preprocess
        self._run = (backend.frames_to_classes if self._frames_in
                     else backend.classes if fused else backend)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 BGR -> (1, 3, h, w) float32 normalised RGB on the backend's device."""
        return self._prepare(image).to(self.backend.device, non_blocking=True)

    def preprocess_batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """N frames (H_i, W_i, 3) uint8 BGR -> (N, 3, h, w) float32 on the backend's device."""
        if len(images) == 1:
            return self.preprocess(images[0])
        return torch.cat([self._prepare(image) for image in images]).to(self.backend.device)

    def postprocess(self, output: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray,
                                                                               np.ndarray]:
        """logits (1, C, h, w), or a class map (1, h, w) uint8 (fused argmax) -> classes
        (H, W) uint8 and drivable (H, W) uint8 at `size`."""
        size = tuple(size)
        if output.dtype == torch.uint8:  # the engine took the argmax
            classes = np.ascontiguousarray(output[0].cpu().numpy())
        elif self.upsample == "classes":
            classes = argmax_channels(output[0].detach().cpu().float().numpy())
        else:
            classes = logits_to_classes(resize_logits(output, size))[0].to(torch.uint8)
            classes = classes.cpu().numpy()
        if classes.shape != size:
            classes = resize_classes(classes, size)
        return classes, drivable_mask(classes, self._drivable_ids)

    def submit(self, images: Sequence[np.ndarray]) -> InFlight:
        """Preprocess N frames and run the engine now; masks come from `.result()`."""
        t0 = time.perf_counter()
        if self._frames_in:  # the engine normalises; here they are only resized
            x = frames_batch(images, self.spec.input_size)
        else:
            x = self.preprocess_batch(images)
        t1 = time.perf_counter()
        output = infer_in_chunks(self._run, x, self._static_batch)
        if output.device.type == "cuda":
            torch.cuda.synchronize(output.device)
        t2 = time.perf_counter()
        timings = {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3}
        sizes = [self.mask_size or image.shape[:2] for image in images]
        return InFlight(self, output, sizes, timings)

    def __call__(self, image: np.ndarray) -> Masks:
        """(H, W, 3) uint8 BGR -> Masks at (H, W) (or `mask_size`), with pre/infer/post
        times."""
        return self.submit([image]).result()[0]
