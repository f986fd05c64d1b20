"""FrameFeed: one reader thread per source, and batches of the newest frame of each.

Every source gets a thread that calls `source.read()` (so decoding a video file overlaps
inference) and leaves the frame in that source's slot. `next_batch()` waits until at least
one slot holds a frame, then takes every frame waiting, at most one per source: one engine
call serves all cameras that have something new, and none waits for a slower one.

A live source's slot keeps only the newest frame (one it replaces is counted as dropped);
a file source's reader decodes its next frame once the slot was emptied, so every frame of
a file arrives, in order, one frame is decoded ahead (while the last one is inferred), and
none is decoded to be thrown away.

A source's frames may be turned and mirrored (`orientations`, from `orientation()`: a
camera mounted upside down, a reversing camera's mirror image) on its reader thread, so
everything downstream (engine, masks, the image topic) sees them upright and unmirrored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from rtseg.stream.sources import Frame, Source

log = logging.getLogger(__name__)
ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
                270: cv2.ROTATE_90_COUNTERCLOCKWISE}  # degrees clockwise -> OpenCV's code
FLIP_CODES = {"horizontal": 1, "vertical": 0}  # cv2.flip: around the vertical / horizontal axis
Orientation = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Fed:
    """A frame of source `index`, with the time its read took (the capture stage, ms)."""

    index: int
    frame: Frame
    capture_ms: float


class FrameFeed:
    """Reader threads over `sources`; `next_batch()` hands out their frames (see module doc)."""

    def __init__(self, sources: Sequence[Source], read_timeout: float = 0.2,
                 orientations: Sequence[Orientation | None] = ()):
        self.sources = list(sources)
        self._orient = list(orientations) or [None] * len(self.sources)
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
                if (orient := self._orient[index]) is not None:
                    label = None if frame.label is None else orient(frame.label)
                    frame = replace(frame, image=orient(frame.image), label=label)
                self._put(Fed(index, frame, (time.perf_counter() - t0) * 1e3), source.live)
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
        with none; None once every source has ended and nothing is left."""
        with self._cond:
            self._cond.wait_for(lambda: any(self._slots) or all(self._done) or self._closed,
                                timeout)
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



def orientation(rotate: int = 0, flip: str = "none") -> Orientation | None:
    """A frame turned `rotate` degrees clockwise (0, 90, 180, 270), then mirrored (`flip`
    horizontal: left-right, vertical: top-bottom, none), as one function of an (H, W, 3)
    or (H, W) array (a quarter turn gives (W, H, ...)); None when it does neither."""
    turn, mirror = ROTATE_CODES.get(rotate), FLIP_CODES.get(flip)
    if turn is None and mirror is None:
        return None
    if mirror is None:
        return lambda image: cv2.rotate(image, turn)
    if turn is None:
        return lambda image: cv2.flip(image, mirror)
    return lambda image: cv2.flip(cv2.rotate(image, turn), mirror)
