"""Frame sources for `rtseg run --source SRC`.

SRC is a camera index (`camera0`, `0`), a stream URL (`rtsp://`, `http://`, `https://`),
a video file, a folder of images, a glob (`frames/*.png`), an image file, an MCAP
recording (`drive.mcap`, `drive.mcap#/front/image`, a rosbag2 folder), or `demo`.

Live sources (camera, URL, demo) read on a capture thread that keeps only the newest
frame (see `rtseg.stream.live`). File sources (`rtseg.stream.file_sources`, recordings:
`rtseg.stream.bag_source`) need no thread: every frame arrives, in order, unless paced
(`pace=True`) or looped (`loop=True`).

Every image is `(H, W, 3) uint8 BGR`, C-contiguous, as OpenCV gives it.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from rtseg.data import IMAGE_SUFFIXES
from rtseg.errors import RtsegError, type_name
from rtseg.stream.live import (
    CaptureSettings,
    Device,
    LatestFrameReader,
    SceneDevice,
    StreamOptions,
    open_camera,
    open_url,
)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
LIVE_KINDS = ("camera", "url", "demo")  # parse_source's kinds read at the source's own rate
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".ts", ".mjpg", ".mjpeg", ".gif")
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    image: `(H, W, 3) uint8 BGR`, C-contiguous. label: `(H, W) uint8` ground-truth class
    map (demo only, else None). seq: index of the captured frame from 0. stamp_ns: wall
    clock at capture, `time.time_ns()` (a recording replayed with recorded stamps: its
    recorded capture time). read_ns: wall clock when the node got the frame, where that
    differs from stamp_ns (None: it is stamp_ns); latency counts from it.
    """

    seq: int
    stamp_ns: int
    image: np.ndarray
    label: np.ndarray | None = None
    read_ns: int | None = None


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
    recorded_stamps: bool = False  # recordings: stamp frames with their recorded capture time
    capture: CaptureSettings | None = None  # cameras: size, fps, pixel format to ask for
    options: StreamOptions | None = None  # stream URLs: FFmpeg options

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
    """Classify a `--source` string: ("camera", index), ("url" | "video" | "images" | "bag",
    text) or ("demo", "demo"). Raises RtsegError for anything else."""
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
    from rtseg.stream.bag_source import split_bag_spec

    if split_bag_spec(spec) is not None:  # FILE.mcap[#TOPIC], a rosbag2 folder[#TOPIC]
        return "bag", spec
    path = Path(spec)
    if path.is_dir() or (not path.exists() and any(ch in spec for ch in GLOB_CHARS)):
        return "images", spec
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "images", spec
    if path.suffix.lower() in VIDEO_EXTENSIONS or path.is_file():
        return "video", spec
    raise RtsegError(f"source {spec!r} is not a camera index (camera0), a stream URL "
                     "(rtsp://, http://), a video file, an image folder, a glob (frames/*.png), "
                     "an MCAP recording or 'demo', and no file or folder of that name exists")


def is_live(text: str) -> bool:
    """Whether a `--source` is live (a camera, a stream URL, the demo): its capture thread
    works at the source's rate whatever the engine does (a file's reader waits once it is
    ahead). False for anything `parse_source` refuses: the node reports that itself."""
    try:
        return parse_source(text)[0] in LIVE_KINDS
    except RtsegError:
        return False


def sanitise(text: str) -> str:
    """Keep [A-Za-z0-9_-]; runs of anything else become one '_'."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "source"


def source_name(kind: str, target: str | int) -> str:
    """Short name for topics: camera0, file stem, folder name, URL host, or demo (not for
    recordings: `rtseg.stream.bag_source.camera_name` names them after their image topic)."""
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
    if spec.recorded_stamps and kind != "bag":
        raise RtsegError(f"--stamps recorded needs a recording (FILE.mcap or a rosbag2 "
                         f"folder); source {spec.spec!r} has no recorded capture times")
    if kind == "bag":  # named after the image topic it picks
        from rtseg.stream.bag_source import BagSource, split_bag_spec

        path, topic = split_bag_spec(str(target))
        return BagSource(Path(path), topic, spec)
    name = source_name(kind, target)
    if kind == "camera":
        return LiveSource(name, spec.spec, open_camera(int(target), spec.capture))
    if kind == "url":
        printable = without_password(str(target))
        return LiveSource(name, printable, open_url(str(target), printable, spec.options))
    if kind == "demo":
        device = SceneDevice(spec.seed, spec.demo_height, spec.demo_width)
        return LiveSource(name, spec.spec, device, period_s=1.0 / spec.fps)
    from rtseg.stream.file_sources import ImageFilesSource, VideoFileSource

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


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard ('frames/*.png' -> 'frames')."""
    root = Path(".")
    for part in Path(pattern).parts:
        if any(ch in part for ch in GLOB_CHARS):
            break
        root /= part
    return root
