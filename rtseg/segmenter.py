"""The Python API: segment frames in your own process, without the node or a socket.

    from rtseg import Segmenter

    with Segmenter("benchmarks/models/camvid.pt", engine="auto") as seg:
        masks = seg(frame)            # frame: (H, W, 3) uint8 BGR, as OpenCV reads it
        masks.classes                 # (H, W) uint8 class index into seg.classes
        masks.drivable                # (H, W) uint8, 1 = drivable
        picture = seg.overlay(frame, masks)

A frame goes through what `rtseg run` does with it (rtseg.stream.node.make_pipeline: the
same resize, normalisation, engine and upsampling), so the masks are the node's masks; the
engine is chosen and cached as `rtseg run --engine` does (rtseg.export.cache), its parity
gate included. `upsample="logits"` gives the masks of `rtseg predict` / `rtseg eval`
instead (logits resized bilinearly before the argmax; on CUDA that is the only way).
One call runs at a time (a lock): share a Segmenter between threads, or open one per
thread for parallel engines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rtseg.errors import RtsegError, type_name


class Segmenter:
    """A model ready to segment BGR frames (module doc).

    Args:
        model: a checkpoint, an engine manifest or engine file, or "demo" (the bundled one).
        engine: "torch" runs a checkpoint eagerly; "auto" / "onnx" / "openvino" / "aoti" /
            "tensorrt" compile it once into `engine_cache` (parity-gated, on the frames of
            `calib` when given) and run the engine. An engine as `model` runs as it is.
        precision: of the engine compiled into `engine_cache`: "int8" (calibrated on
            `calib`, which it needs), "bf16", "fp32", "fp16" (CUDA); None: the format's
            default (`rtseg run --precision`). Not for engine "torch" or an engine file.
        device: "auto", "cpu" or "cuda".
        batch: the static batch a compiled engine is built for (`segment` takes any count).
        mask_size: "frame" (each frame's size), "input" (the network's, no upsampling) or
            "HxW"; CPU only, as `rtseg run --mask-size`.
        upsample: None (the node's: on the CPU the class map is resized, nearest) or
            "logits" (logits resized bilinearly, then the argmax: `rtseg predict`'s masks).
        warmup: run one blank frame now, so that the first real frame does not pay the
            engine's first-inference cost (several times a later call's).
        drivable: class names that make up `Masks.drivable` instead of the model's own
            (`rtseg run --drivable`), e.g. ("Road", "Pavement").
    """

    def __init__(self, model: str = "demo", *, engine: str = "torch", device: str = "auto",
                 engine_cache: str = "engines/cache", calib: str | None = None,
                 precision: str | None = None, batch: int = 1, mask_size: str = "frame",
                 upsample: str | None = None, warmup: bool = True,
                 drivable: Sequence[str] = ()):
        from rtseg.backends import load_backend
        from rtseg.config import RUN_ENGINES
        from rtseg.export.cache import engine_model
        from rtseg.stream.node import make_pipeline

        if engine not in RUN_ENGINES:
            raise RtsegError(f"unknown engine {engine!r}: use one of {', '.join(RUN_ENGINES)}")
        if upsample not in (None, "logits"):
            raise RtsegError(f"unknown upsample {upsample!r}: use None (the node's masks) or "
                             "'logits' (rtseg predict's)")
        self.model = engine_model(model, engine, device, engine_cache, batch=batch,
                                  calib=calib, precision=precision)
        self.backend = load_backend(self.model, device, drivable=drivable)
        self.spec = self.backend.spec
        self._lock = threading.Lock()
        self.calls = 0
        try:
            self.pipeline = make_pipeline(self.backend, mask_size=mask_size,
                                          upsample=upsample or "classes")
            if warmup:
                self.segment([np.zeros((*self.input_size, 3), np.uint8)])
                self.calls = 0  # frames segmented, the warm-up not counted
        except BaseException:
            self.backend.close()
            raise

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names: index i of `Masks.classes` is `classes[i]`."""
        return tuple(self.spec.classes)

    @property
    def drivable_classes(self) -> tuple[str, ...]:
        """The classes that make up `Masks.drivable`."""
        return tuple(self.spec.classes[i] for i in self.spec.drivable_ids)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the network runs at; frames of any size are resized to it."""
        return tuple(self.spec.input_size)

    def __call__(self, frame: np.ndarray):
        """One frame ``(H, W, 3) uint8`` BGR -> Masks (rtseg.stream.pipeline): `classes`
        and `drivable` ``(H, W) uint8`` (or `mask_size`), `timings_ms` (wait, pre, infer,
        post)."""
        return self.segment([frame])[0]

    def segment(self, frames: Sequence[np.ndarray]) -> list:
        """Several frames (any sizes) in one engine call where the engine allows -> one
        Masks each, in order."""
        frames = list(frames)
        if not frames:
            raise RtsegError("segment() needs at least one frame")
        for i, frame in enumerate(frames):
            check_frame(frame, f"frame {i}" if len(frames) > 1 else "the frame")
        t0 = time.perf_counter()
        with self._lock:
            waited = (time.perf_counter() - t0) * 1e3
            batch = self.pipeline.submit(frames)
            try:  # the CUDA path's masks are views of buffers the next batch reuses
                masks = [replace(m, classes=_owned(m.classes), drivable=_owned(m.drivable),
                                 timings_ms={"wait": waited, **m.timings_ms})
                         for m in batch.result()]
            finally:
                batch.release()
            self.calls += len(frames)
        return masks

    def overlay(self, frame: np.ndarray, masks, alpha: float = 0.5) -> np.ndarray:
        """The viewer's drawing of `masks` over `frame`: ``(H, W, 3) uint8`` BGR."""
        from rtseg.palette import overlay

        return overlay(frame, masks.classes, self.classes, masks.drivable, alpha=alpha)

    def describe(self) -> dict:
        """Name, classes, drivable classes, palette, input size and normalisation (what
        `rtseg serve`'s ``GET /model`` answers), JSON-able."""
        from rtseg.palette import class_colour

        spec = self.spec
        return {"name": spec.name, "classes": list(self.classes),
                "drivable": list(self.drivable_classes),
                "palette": [list(class_colour(name)) for name in spec.classes],
                "input_size": list(spec.input_size), "mean": list(spec.mean),
                "std": list(spec.std)}

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _owned(array: np.ndarray) -> np.ndarray:
    return array if array.flags.owndata else array.copy()


def check_frame(frame, what: str = "the frame") -> None:
    """RtsegError unless `frame` is an ``(H, W, 3) uint8`` array, naming what it is and
    the conversion to make."""
    if not isinstance(frame, np.ndarray):
        raise RtsegError(f"{what} is a {type_name(frame)}, not a numpy array: pass the "
                         "(H, W, 3) uint8 BGR array cv2.imread or VideoCapture.read gives")
    got = f"{what} has shape {frame.shape} {frame.dtype}"
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        raise RtsegError(f"{got}: a grey image; convert it with "
                         "cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)")
    if frame.ndim == 3 and frame.shape[2] == 4:
        raise RtsegError(f"{got}: four channels; drop alpha with "
                         "cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)")
    if frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
        raise RtsegError(f"{got}; expected (H, W, 3) BGR")
    if frame.dtype != np.uint8:
        raise RtsegError(f"{got}; expected uint8 (0-255): for a float image in 0-1, pass "
                         "(frame * 255).round().astype(np.uint8)")
