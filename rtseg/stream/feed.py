"""FrameFeed: one reader thread per source, and batches of the newest frame of each.

Every source gets a thread that calls `source.read()` (so decoding a video file overlaps
inference) and leaves the frame in that source's slot. `next_batch()` waits until at least
one slot holds a frame, then takes every frame waiting, at most one per source: one engine
call serves all cameras that have something new, and none waits for a slower one.

A live source's slot keeps only the newest frame (one it replaces is counted as dropped);
a file source's reader decodes its next frame once the slot was emptied, so every frame of
a file arrives, in order, one frame is decoded ahead (while the last one is inferred), and
none is decoded to be thrown away.

A source's frames may be turned, mirrored and cropped (`transforms`, from
`frame_transform()`: a camera mounted upside down, a reversing camera's mirror image, the
car's bonnet cut off) on its reader thread, so everything downstream (engine, masks, the
image topic) sees them upright, unmirrored and cropped. A crop that does not fit a frame
ends the node with that error (`next_batch` raises it).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from rtseg.errors import RtsegError
from rtseg.stream.sources import Frame, Source

log = logging.getLogger(__name__)
ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
                270: cv2.ROTATE_90_COUNTERCLOCKWISE}  # degrees clockwise -> OpenCV's code
FLIP_CODES = {"horizontal": 1, "vertical": 0}  # cv2.flip: around the vertical / horizontal axis
Transform = Callable[[np.ndarray], np.ndarray]  # (H, W[, 3]) -> (H', W'[, 3])


class CropError(RtsegError):
    """A --crop box that does not fit a source's frames: the node ends with it (a source
    that fails to read otherwise stops alone, logged)."""


@dataclass(frozen=True)
class Fed:
    """A frame of source `index`, with the time its read took (the capture stage, ms)."""

    index: int
    frame: Frame
    capture_ms: float


class FrameFeed:
    """Reader threads over `sources`; `next_batch()` hands out their frames (see module doc)."""

    def __init__(self, sources: Sequence[Source], read_timeout: float = 0.2,
                 transforms: Sequence[Transform | None] = ()):
        self.sources = list(sources)
        self._transform = list(transforms) or [None] * len(self.sources)
        self._failure: CropError | None = None
        self._cond = threading.Condition()
        self._slots: list[Fed | None] = [None] * len(self.sources)
        self._done = [False] * len(self.sources)
        self._replaced = [0] * len(self.sources)
        self._closed = False
        self._timeout = read_timeout
        self._threads = [threading.Thread(target=self._read, args=(i,), daemon=True,
                                          name=f"rtseg-feed-{s.name}")
                         for i, s in enumerate(self.sources)]
        for thread in self._threads:
            thread.start()

    def _read(self, index: int) -> None:
        source = self.sources[index]
        try:
            while not self._closed:
                if not source.live:
                    self._wait_empty(index)
                t0 = time.perf_counter()
                frame = source.read(timeout=self._timeout)
                if frame is None:
                    if source.exhausted:
                        break
                    continue
                if (change := self._transform[index]) is not None:
                    label = None if frame.label is None else change(frame.label)
                    frame = replace(frame, image=change(frame.image), label=label)
                self._put(Fed(index, frame, (time.perf_counter() - t0) * 1e3), source.live)
        except CropError as exc:  # the user's settings do not fit this source's frames
            with self._cond:
                self._failure = CropError(f"--source {source.frame_id}: {exc}")
        except Exception:  # a failing source must end its feed visibly, not hang the node
            log.exception("reading %s failed; this source stops", source.name)
        finally:
            with self._cond:
                self._done[index] = True
                self._cond.notify_all()

    def _wait_empty(self, index: int) -> None:
        """A file source reads its next frame only once the last one was taken, so the
        frame's stamp is close to when it enters the pipeline."""
        with self._cond:
            self._cond.wait_for(lambda: self._slots[index] is None or self._closed)

    def _put(self, fed: Fed, live: bool) -> None:
        with self._cond:
            if live and self._slots[fed.index] is not None:
                self._replaced[fed.index] += 1
            self._slots[fed.index] = fed
            self._cond.notify_all()

    def next_batch(self, timeout: float = 0.5) -> list[Fed] | None:
        """Frames waiting, at most one per source, in source order; [] after `timeout` s
        with none; None once every source has ended and nothing is left. Raises the
        CropError that stopped a source's reader (a crop that does not fit its frames)."""
        with self._cond:
            self._cond.wait_for(lambda: any(self._slots) or all(self._done) or self._closed
                                or self._failure is not None, timeout)
            if self._failure is not None:
                raise self._failure
            batch = [fed for fed in self._slots if fed is not None]
            self._slots = [None] * len(self.sources)
            self._cond.notify_all()
        if not batch and (all(self._done) or self._closed):
            return None
        return batch

    def dropped(self, index: int) -> int:
        """Frames of source `index` never handed out: the source's own drops plus frames
        replaced in the slot by a newer one."""
        return int(self.sources[index].stats.get("dropped", 0)) + self._replaced[index]

    def state(self, index: int) -> str:
        """Source `index` for the status topic: ``ended`` once its reader stopped, else
        the source's own ``ok`` / ``reconnecting``."""
        with self._cond:
            done = self._done[index]
        return "ended" if done else self.sources[index].state

    def captured(self) -> int:
        """Frames captured by all sources so far."""
        return sum(int(s.stats.get("captured", 0)) for s in self.sources)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the reader threads (each returns within its read timeout) and join them."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)



def frame_transform(rotate: int = 0, flip: str = "none",
                    crop: tuple[int, int, int, int] | None = None) -> Transform | None:
    """A frame turned `rotate` degrees clockwise (0, 90, 180, 270), then mirrored (`flip`
    horizontal: left-right, vertical: top-bottom, none), then cut to `crop` (x, y, w, h of
    the turned frame; w or h 0: to its edge), as one function of an (H, W, 3) or (H, W)
    array (a quarter turn gives (W, H, ...); a crop is a view, no copy); None when it does
    none of them."""
    turn, mirror = ROTATE_CODES.get(rotate), FLIP_CODES.get(flip)
    steps: list[Transform] = []
    if turn is not None:
        steps.append(lambda image: cv2.rotate(image, turn))
    if mirror is not None:
        steps.append(lambda image: cv2.flip(image, mirror))
    if crop is not None:
        steps.append(cropper(crop))
    if len(steps) < 2:
        return steps[0] if steps else None
    return lambda image: functools.reduce(lambda im, step: step(im), steps, image)


def cropper(box: tuple[int, int, int, int]) -> Transform:
    """(H, W[, 3]) -> the (h, w[, 3]) view of `box` (x, y, w, h; w or h 0: to the edge);
    a box reaching beyond the frame raises CropError naming both."""
    x, y, w, h = box

    def cut(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        right, bottom = x + w if w else width, y + h if h else height
        if right > width or bottom > height or x >= right or y >= bottom:
            raise CropError(
                f"--crop {x},{y},{w},{h} does not fit its frames ({width} wide, {height} "
                f"high, after any --rotate / --flip): keep X + W <= {width} and Y + H <= "
                f"{height} (a W or H of 0 reaches the edge)")
        return image[y:bottom, x:right]
    return cut
