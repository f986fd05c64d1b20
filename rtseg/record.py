"""`rtseg record`: a node's topics into MCAP files of ROS 2 messages (and an mp4).

Each received message becomes one MCAP message on the ROS-style topic ``/NAME/KIND``
(rtseg.ros2msg): masks ``sensor_msgs/msg/Image`` mono8, images
``sensor_msgs/msg/CompressedImage`` jpeg, status heartbeats
``diagnostic_msgs/msg/DiagnosticArray`` (rtseg.ros2msg.status_to_ros); log time = arrival,
header.stamp = the frame's capture time (a status: its send time), MCAP sequence = the
frame's seq. A metadata record ``rtseg`` names the
endpoint and the class names of each classes topic. `out` is one file (``run.mcap``:
Foxglove opens it, ``ros2 bag info run.mcap`` reads it) or a rosbag2 folder (``run``:
``run/run_0.mcap`` ... and ``run/metadata.yaml``, optionally split by size or time;
rtseg.bag_writer) for ``ros2 bag info|play run``. With ``overlay`` each camera's overlay
(rtseg.compose: the classes in colour over the frame, what the viewer shows) is recorded
too, as ``/NAME/overlay`` JPEG CompressedImages with the frame's stamp: what Foxglove shows
in colour (a classes mask holds small values and looks black as mono8). With ``mp4`` the
first camera's overlay is also written as a video, at `mp4_fps`, each frame held until the
next one's capture time. With ``cameras`` (camera files, rtseg.ground) each drivable mask
of those cameras is also written as ``/NAME/grid``, a ``nav_msgs/msg/OccupancyGrid`` on the
ground with the mask's stamp and seq (with the file's [costs]: each classes mask). No torch here.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rtseg.bag_writer import BagFolder, McapBag, Split, open_bag
from rtseg.camera_file import load_grounds
from rtseg.client import MaskSubscriber
from rtseg.compose import Composite, Compositor, FrameParts, draw, overlay_message
from rtseg.errors import RtsegError
from rtseg.grid_fusion import GridFusion
from rtseg.ground import GroundGrid
from rtseg.imagefile import ImageFileError
from rtseg.protocol import ProtocolError
from rtseg.ros2msg import ground_messages, ros_topic
from rtseg.signals import on_stop_signals
from rtseg.status import NodeStatus

log = logging.getLogger("rtseg.record")
KINDS = ("drivable", "classes", "image", "status")
POLL_MS = 200  # how often the loop looks at the clock and the stop flag
MAX_HOLD_S = 5.0  # the video holds a frame through a gap of at most this long
OVERLAY_QUALITY = 85  # JPEG quality of the /NAME/overlay images


@dataclass(frozen=True)
class RecordConfig:
    """`rtseg record`: what to record (`topics` of the node at `endpoint`), where (`out`,
    and optionally the overlay video `mp4`), and when to stop (`count` messages,
    `seconds`, `timeout_s` without a message; all None: until a signal). `out` ending in
    .mcap is one file; any other path a rosbag2 folder, split into a new file past
    `split_mb` megabytes or `split_seconds`, keeping the newest `max_files` files
    (rtseg.bag_writer). `overlay`: also write each
    camera's drawn overlay (the viewer's picture) as `/NAME/overlay`."""

    endpoint: str
    topics: tuple[str, ...]
    out: str
    count: int | None = None
    seconds: float | None = None
    timeout_s: float | None = None
    mp4: str | None = None
    mp4_fps: float = 10.0
    split_mb: float | None = None
    split_seconds: float | None = None
    max_files: int | None = None
    overlay: bool = False
    curve_server_key: str | None = None  # a node run with --curve-secret
    curve_secret: str | None = None  # this client's key pair, for a node listing clients
    cameras: tuple[str, ...] = ()  # --camera [NAME=]FILE: also /NAME/grid (rtseg.ground)
    fuse: bool = False  # also /grid and /scan: the cameras' grids fused (rtseg.grid_fusion)

    @property
    def folder(self) -> bool:
        """Whether `out` names a rosbag2 folder rather than one MCAP file."""
        return not self.out.lower().endswith(".mcap")


@dataclass(frozen=True)
class RecordReport:
    """What a recording wrote: messages per topic, seconds, video frames, why it ended."""

    out: str
    counts: dict[str, int]
    seconds: float
    video: str | None = None
    video_frames: int = 0
    stopped_by: str | None = None
    skipped: int = 0
    files: int = 1
    deleted: int = 0

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line for the end of a recording."""
        per_topic = ", ".join(f"{t} {n}" for t, n in self.counts.items()) or "none arrived"
        line = (f"rtseg record: {self.messages} messages ({per_topic}) in {self.seconds:.1f} s "
                f"to {self.out}")
        if self.files > 1:
            line += f" ({self.files} files" + (
                f"; {self.deleted} older deleted by --max-files)" if self.deleted else ")")
        if self.video:
            line += f"; {self.video_frames} video frames to {self.video}"
        if self.skipped:
            line += f"; skipped {self.skipped} malformed"
        return line + (f"; stopped by {self.stopped_by}" if self.stopped_by else "")


def check_config(cfg: RecordConfig) -> None:
    """Refuse, before anything opens, what cannot be recorded or would not stop sensibly."""
    for topic in cfg.topics:
        if topic.rpartition("/")[2] not in KINDS:
            raise RtsegError(f"cannot record {topic!r}: record NAME/drivable, NAME/classes, "
                             "NAME/image or NAME/status topics")
    for flag, value in (("--count", cfg.count), ("--seconds", cfg.seconds),
                        ("--timeout", cfg.timeout_s), ("--mp4-fps", cfg.mp4_fps),
                        ("--split-mb", cfg.split_mb), ("--split-seconds", cfg.split_seconds)):
        if value is not None and value <= 0:
            raise RtsegError(f"{flag} must be positive, got {value}")
    for path in (cfg.out, cfg.mp4):
        if path is not None and not Path(path).parent.is_dir():
            raise RtsegError(f"cannot write {path}: folder {Path(path).parent} does not exist")
    for flag, wanted in (("--mp4", cfg.mp4 is not None), ("--overlay", cfg.overlay)):
        if wanted and not video_camera(cfg.topics):
            raise RtsegError(f"{flag} draws masks: record a NAME/classes or NAME/drivable topic")
    _check_out(cfg)
    if cfg.cameras and not mask_cameras(cfg.topics):
        raise RtsegError("--camera puts masks on the ground: record a NAME/drivable topic (a "
                         "NAME/classes topic for a camera file with [costs])")


def check_grounds(grounds: dict[str, GroundGrid], topics: tuple[str, ...]) -> None:
    """Each camera with a camera file records the mask its grid is made from."""
    for name, ground in grounds.items():
        if f"{name}/{ground.mask_kind}" not in topics:
            raise RtsegError(f"--camera for {name}: its grid is made from {name}/"
                             f"{ground.mask_kind}; record that topic too")


def _check_out(cfg: RecordConfig) -> None:
    out = Path(cfg.out)
    split = cfg.split_mb is not None or cfg.split_seconds is not None
    if cfg.max_files is not None and (cfg.max_files < 2 or not split):
        raise RtsegError(f"--max-files keeps the newest N >= 2 files of a split recording "
                         f"(with --split-mb or --split-seconds), got {cfg.max_files}")
    if not cfg.folder:
        if split:
            raise RtsegError(f"--split-mb / --split-seconds split a rosbag2 folder: give --out "
                             f"a folder name ({out.with_suffix('')}) instead of {out.name}")
        return
    if out.exists() and not out.is_dir():
        raise RtsegError(f"cannot record into {out}: it is a file; name a new folder (rosbag2 "
                         "layout) or a FILE.mcap")
    if out.is_dir() and any(out.iterdir()):
        raise RtsegError(f"cannot record into {out}: the folder exists and is not empty; name a "
                         "new folder (rosbag2 layout) or a FILE.mcap")


def mask_cameras(topics: tuple[str, ...]) -> list[str]:
    """The camera NAMEs with a mask topic among `topics`, in order."""
    return list(dict.fromkeys(t.rpartition("/")[0] for t in topics
                              if t.rpartition("/")[2] in ("classes", "drivable")))


def video_camera(topics: tuple[str, ...]) -> str | None:
    """The camera NAME whose overlay goes to the video: the first with a mask topic."""
    return next(iter(mask_cameras(topics)), None)


class OverlayVideo:
    """The overlays of one camera as an mp4 (OpenCV, mp4v) at `fps`, in capture time."""

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.fps = path, fps
        self.frames = 0
        self._writer = None
        self._t0 = 0
        self._held = None  # (H, W, 3) uint8 BGR waiting for the next frame's slot

    def add(self, composite: Composite) -> None:
        import cv2

        if self._writer is None:
            height, width = composite.bgr.shape[:2]
            self._size, self._t0 = (width, height), composite.stamp_ns
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                raise RtsegError(f"OpenCV cannot write the video {self.path}: use a .mp4 path")
        slot = round((composite.stamp_ns - self._t0) * self.fps / 1e9)
        gap = min(slot - self.frames, round(MAX_HOLD_S * self.fps))
        for _ in range(gap):  # hold the previous frame until this one's time
            self._write(self._held)
        bgr = composite.bgr
        if bgr.shape[1::-1] != self._size:
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        self._held = bgr

    def _write(self, bgr) -> None:
        self._writer.write(bgr)
        self.frames += 1

    def finish(self) -> None:
        if self._writer is None:
            return
        if self._held is not None:
            self._write(self._held)
            self._held = None
        self._writer.release()
        self._writer = None


@dataclass
class _Recording:
    """The loop's state: what has been written, and when to stop."""

    cfg: RecordConfig
    bag: McapBag | BagFolder
    video: OverlayVideo | None
    compositors: dict[str, Compositor]  # the cameras drawn, for the video or --overlay
    camera: str | None  # the video's
    grounds: dict[str, GroundGrid]  # camera -> its grid, for /NAME/grid
    fusion: GridFusion | None  # --fuse: /grid and /scan
    counts: Counter = field(default_factory=Counter)
    signalled: list = field(default_factory=list)
    skipped: int = 0
    heard: float = 0.0  # time.monotonic() of the last message

    def run(self, sub: MaskSubscriber) -> float:
        """Receive and write until a stop condition; returns the seconds recorded. Status
        heartbeats arrive through `on_status`, called from within `sub.recv`."""
        start = self.heard = time.monotonic()
        while not (self.signalled or self._done(start)):
            try:
                header, data = sub.recv(timeout_ms=POLL_MS)
            except TimeoutError:
                continue
            except ProtocolError as exc:
                self._skip(exc)
                continue
            self._first(header.topic)
            self.bag.write(header, data, time.time_ns())
            self.counts[header.topic] += 1
            self._ground(header, data)
            self._draw(header, data)
        return time.monotonic() - start

    def on_status(self, status: NodeStatus) -> None:
        """Record a `NODE/status` heartbeat (a DiagnosticArray), unless the count is full."""
        if self._counted_out():
            return
        self._first(status.topic)
        self.bag.write_status(status, time.time_ns())
        self.counts[status.topic] += 1

    def _first(self, topic: str) -> None:
        self.heard = time.monotonic()
        if not self.counts:
            log.info("first message: %s", topic)

    def _done(self, start: float) -> bool:
        now = time.monotonic()
        if self.cfg.seconds is not None and now - start >= self.cfg.seconds:
            return True
        if self.cfg.timeout_s is not None and now - self.heard >= self.cfg.timeout_s:
            return True
        return self._counted_out()

    def _counted_out(self) -> bool:
        """Whether `count` messages of the subscribed topics have been written."""
        received = sum(self.counts[topic] for topic in self.cfg.topics)
        return self.cfg.count is not None and received >= self.cfg.count

    def _ground(self, header, data) -> None:
        """With the camera's file: its drivable mask's grid; its image's camera info and
        the camera's mount (rtseg.ros2msg.ground_messages)."""
        camera = header.topic.rpartition("/")[0]
        ground = self.grounds.get(camera)
        if ground is None:
            return
        for topic, ros_type, message in ground_messages(header, data, ground, self.fusion):
            self.bag.write_ros(ros_topic(topic), ros_type, message(), time.time_ns(), header.seq)
            self.counts[topic] += 1

    def _draw(self, header, data) -> None:
        camera = header.topic.rpartition("/")[0]
        compositor = self.compositors.get(camera)
        parts = None if compositor is None else compositor.add(header, data)
        if parts is None:
            return
        try:
            composite = draw(parts)
        except ImageFileError as exc:
            self._skip(exc)
            return
        if self.video is not None and camera == self.camera:
            self.video.add(composite)
        if self.cfg.overlay:
            self._write_overlay(camera, parts, composite)

    def _write_overlay(self, camera: str, parts: FrameParts, composite: Composite) -> None:
        """`/CAMERA/overlay`: the drawn frame as a JPEG CompressedImage with the frame's
        seq, stamp and frame_id."""
        header, jpeg = overlay_message(camera, parts, composite, OVERLAY_QUALITY)
        self.bag.write(header, jpeg, time.time_ns())
        self.counts[header.topic] += 1

    def _skip(self, exc: Exception) -> None:
        self.skipped += 1
        log.warning("skipped a message: %s", exc)


def record(cfg: RecordConfig) -> RecordReport:
    """Record until `count` messages, `seconds`, `timeout_s` of silence or SIGINT/SIGTERM;
    the file is finished (summary + footer) in every case. Returns what was written."""
    check_config(cfg)
    grounds = load_grounds(cfg.cameras, tuple(mask_cameras(cfg.topics)))
    check_grounds(grounds, cfg.topics)
    fusion = GridFusion(grounds) if cfg.fuse else None
    camera = video_camera(cfg.topics) if cfg.mp4 else None
    drawn = ({camera} if camera else set()) | (set(mask_cameras(cfg.topics)) if cfg.overlay
                                                else set())
    with MaskSubscriber(cfg.endpoint, cfg.topics,
                        on_status=lambda status: state.on_status(status),
                        curve_server_key=cfg.curve_server_key,
                        curve_secret=cfg.curve_secret) as sub:
        bag = open_bag(cfg.out, cfg.endpoint, Split(
            bytes=None if cfg.split_mb is None else round(cfg.split_mb * 1e6),
            ns=None if cfg.split_seconds is None else round(cfg.split_seconds * 1e9),
            max_files=cfg.max_files))
        video = OverlayVideo(cfg.mp4, cfg.mp4_fps) if cfg.mp4 else None
        compositors = {name: Compositor(t.rpartition("/")[2] for t in cfg.topics
                                        if t.rpartition("/")[0] == name) for name in drawn}
        state = _Recording(cfg, bag, video, compositors, camera, grounds, fusion)
        log.info("recording %s from %s to %s", ", ".join(cfg.topics), cfg.endpoint, cfg.out)
        try:
            with on_stop_signals(state.signalled.append):
                seconds = state.run(sub)
        finally:
            bag.finish()
            if video is not None:
                video.finish()
    stopped = signal.Signals(state.signalled[0]).name if state.signalled else None
    return RecordReport(out=cfg.out, counts=dict(state.counts), seconds=seconds,
                        video=cfg.mp4, video_frames=video.frames if video else 0,
                        stopped_by=stopped, skipped=state.skipped, files=len(bag.files),
                        deleted=bag.deleted)
