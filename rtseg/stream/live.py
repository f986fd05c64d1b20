"""Live capture: one daemon thread per source that keeps only the newest frame.

`LatestFrameReader` runs `device.read()` in a loop on its own thread. Every successful read
gets the next sequence number and replaces the frame held before it, so a consumer slower
than the device sees gaps in `seq` and never a backlog. A failed read is counted and
logged, never replaced by a blank frame; the device is then reopened after an
exponentially growing pause (capped at a few seconds). `close()` stops the thread and
joins it with a timeout; the thread releases the device itself, so a read blocked inside
OpenCV never races a release from another thread.

The devices here return `(image, label)`: image `(H, W, 3) uint8 BGR`, C-contiguous;
label `(H, W) uint8` class map for the synthetic demo, None for real devices.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from rtseg.errors import RtsegError

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 2.0  # a stream back from an outage is read again within ~2 s
URL_TIMEOUT_MS = 5000
THREAD_PREFIX = "rtseg-capture-"
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"  # read by OpenCV at each FFmpeg open
_ENV_LOCK = threading.Lock()  # one open at a time while the variable holds our options

Captured = tuple[np.ndarray, np.ndarray | None]


class Device(Protocol):
    """Something a capture thread reads frames from."""

    def read(self) -> Captured | None:
        """Next `(image (H, W, 3) uint8 BGR, label (H, W) uint8 | None)`, or None on failure."""

    def reopen(self) -> bool:
        """Try to reconnect after failures; True when the device is open again."""

    def release(self) -> None:
        """Free the device; called once, on the capture thread."""


@dataclass(frozen=True)
class CaptureSettings:
    """What to ask a camera for (ROS usb_cam's image_width / image_height, framerate,
    pixel_format); None: the camera's default. size (H, W); fps; fourcc: four characters,
    e.g. MJPG (a USB 2 camera sends 1080p at 30 fps only compressed) or YUYV."""

    size: tuple[int, int] | None = None
    fps: float | None = None
    fourcc: str | None = None

    def __post_init__(self) -> None:
        if self.size is not None and min(self.size) < 1:
            raise RtsegError(f"--capture-size must be positive HxW, got {self.size}")
        if self.fps is not None and not self.fps > 0:
            raise RtsegError(f"--capture-fps must be > 0, got {self.fps}")
        if self.fourcc is not None and not (len(self.fourcc) == 4 and self.fourcc.isascii()):
            raise RtsegError(f"--capture-fourcc takes four characters such as MJPG or YUYV, "
                             f"not {self.fourcc!r}")

    def apply(self, cap: cv2.VideoCapture) -> list[str]:
        """Ask `cap` for these settings (the pixel format first: a camera's sizes and rates
        depend on it); returns what it gives instead, a phrase each ([]: all granted)."""
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if self.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[1])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[0])
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        return self.refused(cap)

    def refused(self, cap: cv2.VideoCapture) -> list[str]:
        """What `cap` gives where it differs from these settings."""
        problems = []
        if self.size:
            got = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
            if got != tuple(self.size):
                problems.append(f"{got[0]}x{got[1]} frames, not {self.size[0]}x{self.size[1]}")
        if self.fps and abs(cap.get(cv2.CAP_PROP_FPS) - self.fps) > 0.5:
            problems.append(f"{cap.get(cv2.CAP_PROP_FPS):g} fps, not {self.fps:g}")
        if self.fourcc:
            code = int(cap.get(cv2.CAP_PROP_FOURCC))
            got = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\0 ")
            if got.upper() != self.fourcc.upper():
                problems.append(f"pixel format {got or 'unknown'}, not {self.fourcc}")
        return problems


@dataclass(frozen=True)
class StreamOptions:
    """FFmpeg options for stream URLs, (name, value) pairs: what `ffmpeg -rtsp_transport tcp
    -i URL` would be given, e.g. rtsp_transport=tcp (RTSP over TCP: no smeared frames from
    lost UDP packets), fflags=nobuffer and flags=low_delay (less demuxer buffering),
    user_agent=..., headers=... (HTTP). OpenCV hands them to FFmpeg through the
    OPENCV_FFMPEG_CAPTURE_OPTIONS variable, which it reads at each open; FFmpeg ignores a
    name none of its demuxers or protocols has."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, items: tuple[str, ...] | list[str]) -> StreamOptions:
        """`NAME=VALUE` strings (--stream-option) -> StreamOptions; a one-line RtsegError
        naming the item that is not one."""
        pairs = []
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z0-9_]+", name.strip()):
                raise RtsegError(f"--stream-option takes NAME=VALUE (an FFmpeg option, e.g. "
                                 f"rtsp_transport=tcp), not {item!r}")
            pairs.append((name.strip(), value))
        return cls(tuple(pairs))

    def encoded(self, base: str | None) -> str:
        """The variable's value: `base` (the user's own, kept) then these pairs, which FFmpeg
        applies later and so override it. Without an RTSP transport in either, OpenCV's
        own default (rtsp_flags prefer_tcp, dropped once the variable is set) is kept."""
        ours = "|".join(f"{name};{_escaped(value)}" for name, value in self.pairs)
        named = {pair.split(";", 1)[0] for pair in (base or "").split("|")}
        named |= {name for name, _ in self.pairs}
        if not named & {"rtsp_transport", "rtsp_flags"}:
            ours = "rtsp_flags;prefer_tcp|" + ours
        return f"{base}|{ours}" if base else ours


def _escaped(value: str) -> str:
    """`value` with FFmpeg's separators escaped (av_get_token: backslash)."""
    return re.sub(r"([\\;|])", r"\\\1", value)


def _open_url(url: str, options: StreamOptions | None) -> cv2.VideoCapture:
    """cv2.VideoCapture of `url` through FFmpeg with open/read timeouts and `options` (in
    the environment for the open only, one open at a time)."""
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS]
    if options is None or not options.pairs:
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts)
    with _ENV_LOCK:
        before = os.environ.get(FFMPEG_OPTIONS_ENV)
        os.environ[FFMPEG_OPTIONS_ENV] = options.encoded(before)
        try:
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts)
        finally:
            if before is None:
                del os.environ[FFMPEG_OPTIONS_ENV]
            else:
                os.environ[FFMPEG_OPTIONS_ENV] = before


class CaptureDevice:
    """A camera index or a stream URL read through `cv2.VideoCapture`; a camera is asked
    for `settings` at every (re)open, and what it refuses is logged; a URL is opened with
    FFmpeg `options`."""

    def __init__(self, target: int | str, label: str, failure_hint: str,
                 settings: CaptureSettings | None = None,
                 options: StreamOptions | None = None) -> None:
        self._target = target
        self._label = label  # printable, credentials removed
        self._settings = settings
        self._options = options
        self._cap = self._open()
        if self._cap is None:
            raise RtsegError(f"{label} could not be opened: {failure_hint}")

    def _open(self) -> cv2.VideoCapture | None:
        if isinstance(self._target, int):
            cap = cv2.VideoCapture(self._target)
        else:
            cap = _open_url(self._target, self._options)
        if cap.isOpened():
            if self._settings is not None and (refused := self._settings.apply(cap)):
                log.warning("%s gives %s; the modes it has: `v4l2-ctl -d /dev/video%s "
                            "--list-formats-ext`", self._label, ", ".join(refused), self._target)
            return cap
        cap.release()
        return None

    def read(self) -> Captured | None:
        """Next frame `(H, W, 3) uint8 BGR` with no label, or None when the read failed."""
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        return np.ascontiguousarray(image), None

    def reopen(self) -> bool:
        self.release()
        self._cap = self._open()
        log.info("%s %s", self._label, "reopened" if self._cap is not None else "still unavailable")
        return self._cap is not None

    def release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_camera(index: int, settings: CaptureSettings | None = None) -> CaptureDevice:
    """Open camera `index` now, asking it for `settings`, raising RtsegError when it cannot
    be opened."""
    hint = "is it connected? list devices with `v4l2-ctl --list-devices`"
    return CaptureDevice(index, f"camera {index}", hint, settings)


def open_url(url: str, printable: str, options: StreamOptions | None = None) -> CaptureDevice:
    """Connect to a stream URL now (timeout a few seconds) with FFmpeg `options`, raising
    RtsegError on failure.

    `printable` is the URL with any password removed, used in messages and logs.
    """
    hint = (f"no stream within {URL_TIMEOUT_MS / 1000:g} s; check the address and that the "
            f"server is running (try `ffprobe '{printable}'`)")
    return CaptureDevice(url, f"stream {printable}", hint, options=options)


class SceneDevice:
    """Synthetic road scenes from `rtseg.data.synthetic.SceneStream`, converted to BGR."""

    def __init__(self, seed: int, height: int, width: int) -> None:
        # Imported here: only the demo needs the generator.
        from rtseg.data.synthetic import SceneStream

        self._stream = SceneStream(seed=seed, height=height, width=width)

    def read(self) -> Captured:
        """Next scene: image `(H, W, 3) uint8 BGR`, label `(H, W) uint8`."""
        rgb, mask = self._stream.next()
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.ascontiguousarray(mask, dtype=np.uint8)

    def reopen(self) -> bool:
        return True

    def release(self) -> None:
        pass


class LatestFrameReader:
    """Reads `device` on a daemon thread and hands out only the newest frame.

    `period_s` paces the reads (the demo renders at a frame rate; cameras pace themselves).
    `take()` returns `(seq, stamp_ns, image (H, W, 3) uint8 BGR, label (H, W) uint8 | None)`.
    """

    def __init__(self, device: Device, name: str, period_s: float | None = None,
                 backoff_s: tuple[float, float] = (BACKOFF_START_S, BACKOFF_CAP_S)) -> None:
        self._device = device
        self._name = name
        self._period_s = period_s
        self._backoff_s = backoff_s
        self._cond = threading.Condition()
        self._latest: tuple[int, int, np.ndarray, np.ndarray | None] | None = None
        self._delivered_seq = -1
        self._captured = self._delivered = self._failures = 0
        self._reconnecting = False  # since a failed read, until the next good one
        self._closed = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=THREAD_PREFIX + name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        delay = self._backoff_s[0]
        next_tick = time.monotonic() - (self._period_s or 0.0)  # first frame at once
        try:
            while not self._stop.is_set():
                if self._period_s is not None:
                    next_tick = max(next_tick + self._period_s, time.monotonic() - self._period_s)
                    if self._stop.wait(max(0.0, next_tick - time.monotonic())):
                        break
                captured = self._safe_read()
                if captured is None:
                    delay = self._recover(delay)
                    continue
                delay = self._backoff_s[0]
                self._publish(time.time_ns(), captured)
        finally:
            self._device.release()

    def _safe_read(self) -> Captured | None:
        try:
            return self._device.read()
        except Exception:  # a broken device must not kill the thread silently
            log.exception("capture from %s raised", self._name)
            return None

    def _recover(self, delay: float) -> float:
        """Count a failed read, wait `delay` seconds, reopen; return the next delay."""
        with self._cond:
            self._failures += 1
            self._reconnecting = True
            failures = self._failures
        log.warning("read from %s failed (%d failures so far); reopening in %.1f s",
                    self._name, failures, delay)
        if not self._stop.wait(delay):
            try:
                self._device.reopen()
            except Exception:
                log.exception("reopening %s raised", self._name)
        return min(delay * 2.0, self._backoff_s[1])

    def _publish(self, stamp_ns: int, captured: Captured) -> None:
        with self._cond:
            self._latest = (self._captured, stamp_ns, captured[0], captured[1])
            self._captured += 1
            self._reconnecting = False
            self._cond.notify_all()

    def _fresh(self) -> bool:
        return self._latest is not None and self._latest[0] > self._delivered_seq

    def take(self, timeout: float) -> tuple[int, int, np.ndarray, np.ndarray | None] | None:
        """The newest frame not yet taken, waiting up to `timeout` s; None on timeout/closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._fresh() or self._closed, max(0.0, timeout))
            if self._closed or not self._fresh():
                return None
            assert self._latest is not None
            self._delivered_seq = self._latest[0]
            self._delivered += 1
            return self._latest

    def stats(self) -> dict[str, int]:
        """Counts: captured, delivered, dropped (captured, never delivered), read_failures."""
        with self._cond:
            pending = int(self._fresh() and not self._closed)
            return {"captured": self._captured, "delivered": self._delivered,
                    "dropped": self._captured - self._delivered - pending,
                    "read_failures": self._failures}

    @property
    def state(self) -> str:
        """``ok``, or ``reconnecting`` from a failed read until the next good one."""
        with self._cond:
            return "reconnecting" if self._reconnecting else "ok"

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and join it for up to `timeout` s (it then releases the device)."""
        self._stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("capture thread for %s did not stop within %.1f s; left to exit "
                        "on its own (daemon)", self._name, timeout)
