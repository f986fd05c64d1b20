"""What the node's loop needs of a pipeline, whichever runs it (host or CUDA).

`submit(images)` takes one frame per source, `(H_i, W_i, 3) uint8 BGR` each, starts the
batch (on the CPU: preprocess and infer on the calling thread; on CUDA: enqueue) and
returns an in-flight batch; `result()` on it gives one `Masks` per frame (class map and
drivable mask at the frame's size), `release()` hands its buffers back. At most `slots`
batches are in flight at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rtseg.backends.base import ModelSpec
from rtseg.stream.pipeline import Masks


class InFlightBatch(Protocol):
    def result(self) -> list[Masks]:
        """One Masks per submitted frame, in order (waits for the batch)."""

    def release(self) -> None:
        """The batch's buffers may be reused (its masks were published)."""


class FramePipeline(Protocol):
    spec: ModelSpec
    slots: int  # batches that may be in flight at once

    def submit(self, images: Sequence[np.ndarray]) -> InFlightBatch:
        """Start a batch of frames `(H, W, 3) uint8 BGR`, one per source."""
