"""File sources for `rtseg run --source SRC`: a video file, a folder of images, a glob or
one image (see `rtseg.stream.sources` for how SRC is classified and opened).

No thread: `read()` decodes the next frame on the caller's thread, so by default every frame
arrives, in order, with seq = frame index, and nothing is decoded ahead that might be thrown
away. With `pace=True` frames are due at the file's frame rate from the first `read()`; a
caller that falls behind gets the frame due now and the ones it missed are skipped unread
(seq then has gaps). `loop=True` starts again at the end and seq keeps counting.
"""

from __future__ import annotations

import glob
import logging
import math
import re
import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from rtseg.data import IMAGE_SUFFIXES
from rtseg.errors import RtsegError
from rtseg.stream.sources import GLOB_CHARS, Frame, Source, SourceSpec

log = logging.getLogger(__name__)


class FileSource(Source):
    """Frames of a file or folder, in order; paced and/or looped as asked.

    Subclasses provide `_step(decode)` and `_rewind()`, and may give each frame a
    recorded capture time (`_recorded_stamp_ns`).
    """

    def __init__(self, name: str, frame_id: str, fps: float, spec: SourceSpec) -> None:
        super().__init__(name, frame_id)
        self.fps = fps
        self._pace = spec.pace
        self._loop = spec.loop
        self._seq = 0  # seq of the next frame in the file
        self._t0: float | None = None
        self._counts = {"captured": 0, "delivered": 0, "dropped": 0, "read_failures": 0}
        self._closed = False
        self._seen_since_rewind = False

    @abstractmethod
    def _step(self, decode: bool) -> tuple[bool, np.ndarray | None]:
        """Move past the next frame: (False, None) at the end; else (True, image or None).

        image is `(H, W, 3) uint8 BGR` when `decode`, None when skipped or undecodable.
        """

    @abstractmethod
    def _rewind(self) -> bool:
        """Go back to the first frame; False when that is impossible."""

    def read(self, timeout: float = 1.0) -> Frame | None:
        """Next frame in order (with pace: the frame due now), or None at the end (then
        `exhausted` is True) or when the next paced frame is more than `timeout` s away."""
        if self.exhausted or self._closed:
            return None
        target = self._due(timeout) if self._pace else self._seq
        if target is None:
            return None
        while True:
            decode = self._seq >= target
            more, image = self._step(decode)
            if not more:
                if self._loop and self._seen_since_rewind and self._rewind():
                    self._seen_since_rewind = False
                    continue
                self.exhausted = True
                return None
            self._seen_since_rewind = True
            frame = self._account(decode, image)
            if frame is not None:
                return frame

    def _account(self, decode: bool, image: np.ndarray | None) -> Frame | None:
        """Count the frame just stepped over; a Frame when it is to be delivered."""
        seq = self._seq
        self._seq += 1
        if decode and image is None:
            self._counts["read_failures"] += 1
            log.warning("frame %d of %s could not be decoded; skipped", seq, self.frame_id)
            return None
        self._counts["captured"] += 1
        if not decode:
            self._counts["dropped"] += 1
            return None
        self._counts["delivered"] += 1
        now, recorded = time.time_ns(), self._recorded_stamp_ns()
        if recorded is None:
            return Frame(seq, now, np.ascontiguousarray(image))
        return Frame(seq, recorded, np.ascontiguousarray(image), read_ns=now)

    def _recorded_stamp_ns(self) -> int | None:
        """The recorded capture time of the frame just decoded, or None: stamp it now."""
        return None

    def _due(self, timeout: float) -> int | None:
        """Seq of the frame due now (waiting for it if it is early), or None after a
        `timeout` s wait when it is due later than that."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - self._seq / self.fps
        due = int((now - self._t0) * self.fps)
        if due >= self._seq:
            return due
        wait = self._t0 + self._seq / self.fps - now
        if wait > timeout:
            time.sleep(max(0.0, timeout))
            return None
        time.sleep(wait)
        return self._seq

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._counts)

    def close(self) -> None:
        self._closed = True


class VideoFileSource(FileSource):
    """A video file decoded by OpenCV; fps from the file (spec.fps when it has none)."""

    def __init__(self, path: Path, name: str, spec: SourceSpec) -> None:
        if not path.is_file():
            raise RtsegError(f"video file {path} not found (looked in {path.resolve().parent}): "
                             "check the path")
        self._path = path
        self._shape: tuple | None = None  # of the last decoded frame
        self._cap: cv2.VideoCapture | None = self._open()
        self._grabbed = True  # _open() grabbed the first frame
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps) and fps > 0):
            log.info("%s states no frame rate; pacing at %g fps", path, spec.fps)
            fps = spec.fps
        super().__init__(name, str(path), fps, spec)
        self._alloc: Callable[[tuple], np.ndarray] | None = None
        self._ring: list[np.ndarray] = []
        self._ring_size = 0

    def decode_into(self, alloc: Callable[[tuple], np.ndarray], count: int = 8) -> bool:
        """Decode into a ring of `count` arrays made by `alloc((H, W, 3))` (pinned memory
        for the CUDA path) instead of a new array per frame. An array is reused `count`
        frames later: the node holds far fewer frames than that at any time."""
        self._alloc, self._ring, self._ring_size = alloc, [], count
        return True

    def _buffer(self, shape: tuple | None) -> np.ndarray | None:
        """The ring's next array for a frame of `shape` (None: no ring, or shape unknown)."""
        if self._alloc is None or shape is None:
            return None
        if self._ring and self._ring[0].shape != shape:
            self._ring = []
        if len(self._ring) < self._ring_size:
            self._ring.append(self._alloc(shape))
            return self._ring[-1]
        self._ring.append(self._ring.pop(0))  # the oldest array, used `count` decodes ago
        return self._ring[-1]

    def _open(self) -> cv2.VideoCapture:
        """Open the file and grab its first frame, or raise RtsegError."""
        cap = cv2.VideoCapture(str(self._path))
        if not (cap.isOpened() and cap.grab()):
            cap.release()
            raise RtsegError(f"video file {self._path} could not be decoded by OpenCV: is it a "
                             f"video? try `ffprobe {self._path}`, or re-encode it with "
                             f"`ffmpeg -i {self._path} out.mp4`")
        return cap

    def _step(self, decode: bool) -> tuple[bool, np.ndarray | None]:
        if self._cap is None:
            return False, None
        if not self._grabbed and not self._cap.grab():
            return False, None
        self._grabbed = False
        if not decode:
            return True, None
        out = self._buffer(self._shape)
        ok, image = self._cap.retrieve(out) if out is not None else self._cap.retrieve()
        if ok:
            self._shape = image.shape
        return True, image if ok else None

    def _rewind(self) -> bool:
        # Reopen rather than seek: seeking to frame 0 is unreliable for some codecs.
        self._release()
        try:
            self._cap, self._grabbed = self._open(), True
        except RtsegError as error:
            log.error("cannot loop: %s", error)
            return False
        return True

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def close(self) -> None:
        super().close()
        self._release()


class ImageFilesSource(FileSource):
    """Images of a folder (not recursive), a glob, or one image file, in natural order
    (frame_2 before frame_10); paced at spec.fps."""

    def __init__(self, target: str, name: str, spec: SourceSpec) -> None:
        self._paths = list_images(target)
        self._index = 0
        if cv2.imread(str(self._paths[0]), cv2.IMREAD_COLOR) is None:
            raise RtsegError(f"image {self._paths[0]} could not be decoded by OpenCV: is it an "
                             "image? remove or re-save it")
        super().__init__(name, target, spec.fps, spec)

    def _step(self, decode: bool) -> tuple[bool, np.ndarray | None]:
        if self._index >= len(self._paths):
            return False, None
        path = self._paths[self._index]
        self._index += 1
        return True, cv2.imread(str(path), cv2.IMREAD_COLOR) if decode else None

    def _rewind(self) -> bool:
        self._index = 0
        return True


def natural_key(path: Path) -> list[str | int]:
    """Sort key: `frame_2` before `frame_10` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def list_images(target: str) -> list[Path]:
    """Image files named by a folder, a glob or one file, naturally sorted; RtsegError if none."""
    exts = ", ".join(IMAGE_SUFFIXES)
    if Path(target).is_dir():
        found = list(Path(target).iterdir())
        where = f"folder {target} holds no image files ({exts}): check the folder"
    elif Path(target).is_file():
        found = [Path(target)]
        where = f"{target} is not an image file ({exts})"
    elif any(ch in target for ch in GLOB_CHARS):
        found = [Path(p) for p in glob.glob(target, recursive=True)]
        where = f"glob {target!r} matched no image files ({exts}): check the pattern"
    else:
        raise RtsegError(f"image file or folder {target} not found: check the path")
    images = [p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise RtsegError(where)
    return sorted(images, key=natural_key)
