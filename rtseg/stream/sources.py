"""Frame sources for `rtseg run --source SRC`.

SRC is a camera index (`camera0`, `0`), a stream URL (`rtsp://`, `http://`, `https://`),
a video file, a folder of images, a glob (`frames/*.png`), an image file, or `demo`.

Live sources (camera, URL, demo) read on a capture thread that keeps only the newest
frame (see `rtseg.stream.live`). File sources need no thread: `read()` decodes the next
frame on the caller's thread, so by default every frame arrives, in order, with
seq = frame index, and nothing is decoded ahead that might be thrown away. With
`pace=True` frames are due at the file's frame rate from the first `read()`; a caller
that falls behind gets the frame due now and the ones it missed are skipped unread
(seq then has gaps). `loop=True` starts again at the end and seq keeps counting.

Every image is `(H, W, 3) uint8 BGR`, C-contiguous, as OpenCV gives it.
"""

from __future__ import annotations

import glob
import logging
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from rtseg.data import IMAGE_SUFFIXES
from rtseg.errors import RtsegError, type_name
from rtseg.stream.live import Device, LatestFrameReader, SceneDevice, open_camera, open_url

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".ts", ".mjpg", ".mjpeg", ".gif")
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    image: `(H, W, 3) uint8 BGR`, C-contiguous. label: `(H, W) uint8` ground-truth class
    map (demo only, else None). seq: index of the captured frame from 0. stamp_ns: wall
    clock at capture, `time.time_ns()`.
    """

    seq: int
    stamp_ns: int
    image: np.ndarray
    label: np.ndarray | None = None


@dataclass(frozen=True)
class SourceSpec:
    """What `--source` and its flags asked for; parsed once, never changed."""

    spec: str
    pace: bool = False
    loop: bool = False
    fps: float = 30.0
    demo_height: int = 360
    demo_width: int = 640
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.spec.strip():
            raise RtsegError("empty --source: give a camera index, URL, file, folder or 'demo'")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise RtsegError(f"--fps must be a positive number, got {self.fps}")
        if min(self.demo_height, self.demo_width) < 1:
            raise RtsegError(f"demo size must be positive: {self.demo_height}x{self.demo_width}")


class Source(ABC):
    """A stream of frames. `read()` returns the next Frame, or None on timeout / at the end.

    name: short id for topics ([A-Za-z0-9_-]). frame_id: the spec as given, or the file
    path. live: newest-frame semantics (camera, URL, demo). exhausted: a file or folder
    source has no frames left (never True for live sources).
    """

    live: bool = False

    def __init__(self, name: str, frame_id: str) -> None:
        self.name = name
        self.frame_id = frame_id
        self.exhausted = False

    @abstractmethod
    def read(self, timeout: float = 1.0) -> Frame | None:
        """Next frame (live: the newest not yet returned), waiting up to `timeout` s."""

    @property
    @abstractmethod
    def stats(self) -> dict[str, int]:
        """captured, delivered, dropped (captured but never delivered), read_failures."""

    @property
    def state(self) -> str:
        """For the status topic: ``ok``, ``reconnecting`` (live sources) or ``ended``."""
        return "ended" if self.exhausted else "ok"

    def decode_into(self, alloc: Callable[[tuple], np.ndarray], count: int = 8) -> bool:
        """Decode frames into `count` reused arrays made by `alloc((H, W, 3))` (pinned
        memory for the CUDA path); True where the source can, False (a no-op) elsewhere."""
        return False

    @abstractmethod
    def close(self) -> None:
        """Stop capture threads (joined with a timeout) and release the device or file."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type_name(self)}(name={self.name!r}, frame_id={self.frame_id!r})"


def parse_source(text: str) -> tuple[str, str | int]:
    """Classify a `--source` string: ("camera", index), ("url" | "video" | "images", text)
    or ("demo", "demo"). Raises RtsegError for anything else."""
    spec = text.strip()
    if spec == "demo":
        return "demo", "demo"
    camera = re.fullmatch(r"(?:camera)?(\d+)", spec)
    if camera:
        return "camera", int(camera.group(1))
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme in URL_SCHEMES:
            return "url", spec
        raise RtsegError(f"unsupported stream scheme '{scheme}://' in source {spec!r}: use one "
                         f"of {', '.join(s + '://' for s in URL_SCHEMES)}")
    path = Path(spec)
    if path.is_dir() or (not path.exists() and any(ch in spec for ch in GLOB_CHARS)):
        return "images", spec
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "images", spec
    if path.suffix.lower() in VIDEO_EXTENSIONS or path.is_file():
        return "video", spec
    raise RtsegError(f"source {spec!r} is not a camera index (camera0), a stream URL "
                     "(rtsp://, http://), a video file, an image folder, a glob (frames/*.png) "
                     "or 'demo', and no file or folder of that name exists")


def sanitise(text: str) -> str:
    """Keep [A-Za-z0-9_-]; runs of anything else become one '_'."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "source"


def source_name(kind: str, target: str | int) -> str:
    """Short name for topics: camera0, file stem, folder name, URL host, or demo."""
    if kind == "camera":
        return f"camera{target}"
    if kind == "demo":
        return "demo"
    text = str(target)
    if kind == "url":
        return sanitise(urlsplit(text).hostname or "stream")
    path = Path(text)
    if kind == "images" and not path.exists() and any(ch in text for ch in GLOB_CHARS):
        return sanitise(_glob_root(text).resolve().name)
    return sanitise(path.resolve().name if path.is_dir() else path.stem)


def without_password(url: str) -> str:
    """The URL with any password replaced by '***', for messages, logs and frame ids."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def open_source(spec: SourceSpec) -> Source:
    """Open the source `spec` describes. Cameras, URLs and files are opened (and checked)
    here, so a bad source raises RtsegError now rather than later on a thread."""
    kind, target = parse_source(spec.spec)
    name = source_name(kind, target)
    if kind == "camera":
        return LiveSource(name, spec.spec, open_camera(int(target)))
    if kind == "url":
        printable = without_password(str(target))
        return LiveSource(name, printable, open_url(str(target), printable))
    if kind == "demo":
        device = SceneDevice(spec.seed, spec.demo_height, spec.demo_width)
        return LiveSource(name, spec.spec, device, period_s=1.0 / spec.fps)
    if kind == "video":
        return VideoFileSource(Path(str(target)), name, spec)
    return ImageFilesSource(str(target), name, spec)


class LiveSource(Source):
    """Camera, URL or demo: a capture thread keeps the newest frame; `read()` takes it."""

    live = True

    def __init__(self, name: str, frame_id: str, device: Device,
                 period_s: float | None = None) -> None:
        super().__init__(name, frame_id)
        self._reader = LatestFrameReader(device, name, period_s)

    def read(self, timeout: float = 1.0) -> Frame | None:
        """Newest frame not yet returned (image `(H, W, 3) uint8 BGR`), or None on timeout."""
        taken = self._reader.take(timeout)
        return None if taken is None else Frame(*taken)

    @property
    def stats(self) -> dict[str, int]:
        return self._reader.stats()

    @property
    def state(self) -> str:
        return self._reader.state

    def close(self) -> None:
        self._reader.close()


class _FileSource(Source):
    """Frames of a file or folder, in order; paced and/or looped as asked.

    Subclasses provide `_step(decode)` and `_rewind()`.
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
        return Frame(seq, time.time_ns(), np.ascontiguousarray(image))

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


class VideoFileSource(_FileSource):
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


class ImageFilesSource(_FileSource):
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


def _natural_key(path: Path) -> list[str | int]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard ('frames/*.png' -> 'frames')."""
    root = Path(".")
    for part in Path(pattern).parts:
        if any(ch in part for ch in GLOB_CHARS):
            break
        root /= part
    return root


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
    return sorted(images, key=_natural_key)
