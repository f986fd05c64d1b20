"""Frames fed from memory: the benchmark's camera, with decoding taken out of the picture.

`MemorySource` hands out its frames in turn, as fast as they are taken (every read
delivers, like a file), stamping each at the moment it is read; it never ends unless
`limit` frames were given. `memory_frames` renders road scenes once, in pinned host memory
when CUDA is to be used, so the CUDA pipeline uploads them without a host copy.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from rtseg.stream.sources import Frame, Source


def memory_frames(size: tuple[int, int], count: int = 8, pinned: bool = False,
                  seed: int = 0) -> list[np.ndarray]:
    """`count` generated road scenes, each (H, W, 3) uint8 BGR at `size`; with `pinned`,
    numpy views of page-locked torch tensors."""
    from rtseg.data.synthetic import SceneStream

    stream = SceneStream(seed=seed, height=size[0], width=size[1])
    frames = []
    for _ in range(count):
        bgr = cv2.cvtColor(stream.next()[0], cv2.COLOR_RGB2BGR)
        if pinned:
            from rtseg.stream.cuda_pipeline import pinned_array

            held = pinned_array(bgr.shape)
            held[...] = bgr
            bgr = held
        frames.append(bgr)
    return frames


class MemorySource(Source):
    """Frames (H, W, 3) uint8 BGR from a list, in turn; seq counts up from 0."""

    live = False

    def __init__(self, frames: list[np.ndarray], name: str = "memory",
                 limit: int | None = None):
        super().__init__(name, f"memory:{name}")
        self._frames, self._limit = frames, limit
        self._seq = 0
        self._closed = False

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame at once; None after `limit` frames (then `exhausted`)."""
        if self._closed or (self._limit is not None and self._seq >= self._limit):
            self.exhausted = True
            return None
        frame = Frame(self._seq, time.time_ns(), self._frames[self._seq % len(self._frames)])
        self._seq += 1
        return frame

    @property
    def stats(self) -> dict[str, int]:
        return {"captured": self._seq, "delivered": self._seq, "dropped": 0,
                "read_failures": 0}

    def close(self) -> None:
        self._closed = True
