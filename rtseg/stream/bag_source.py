"""Replay a recording: `rtseg run --source drive.mcap[#TOPIC]` (or a rosbag2 folder).

An MCAP file of ROS 2 messages (rosbag2's default storage since Iron, Foxglove's
recordings, `rtseg record`'s `/NAME/image`), or a rosbag2 folder of them (a split
recording plays file after file), is a file source like a video
(`rtseg.stream.file_sources`): every frame of TOPIC arrives, in log-time order, unless
paced or looped. TOPIC is a `sensor_msgs/msg/CompressedImage` (any format OpenCV decodes:
jpeg, png) or `sensor_msgs/msg/Image` channel (encodings in `RAW_ENCODINGS`); without
`#TOPIC` the recording must hold exactly one camera topic (the mask and overlay topics of an
`rtseg record` file, known by its `rtseg` metadata record, are not cameras). Paced, a
frame comes at its recorded log time (gaps stay gaps) and one more than an average period
(the topic's message count over its time span) late is skipped. A file cut short (a
recorder killed mid-write) plays up to where it ends.

Frames carry the wall clock at read as their stamp, as from a video file, or with
`recorded_stamps` (`rtseg run --stamps recorded`) their recorded capture time
(`header.stamp`, else the log time), so that masks line up with the recording's other
sensors; latency still counts from the read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from rtseg.bag_census import TopicCount, file_census, merged_topics, topic_messages
from rtseg.errors import RtsegError
from rtseg.rosbag2 import METADATA, listed_files
from rtseg.stream.file_sources import FileSource, natural_key
from rtseg.stream.sources import Frame, SourceSpec, sanitise

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
# encoding -> (channels, OpenCV conversion to BGR or None)
RAW_ENCODINGS = {
    "bgr8": (3, None), "rgb8": (3, cv2.COLOR_RGB2BGR), "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR), "mono8": (1, cv2.COLOR_GRAY2BGR),
    "8UC1": (1, cv2.COLOR_GRAY2BGR), "8UC3": (3, None),
}
DRAWN_KINDS = ("drivable", "classes", "overlay")  # rtseg record's /NAME/KIND: no cameras
# Trailing topic parts that name the image, not the camera: /front/image_raw -> front.
_IMAGE_WORDS = {"image", "image_raw", "image_color", "image_rect", "image_rect_color",
                "compressed", "color", "raw"}


def split_bag_spec(spec: str) -> tuple[str, str | None] | None:
    """`drive.mcap#/front/image` -> ("drive.mcap", "/front/image"); no `#`: topic None.
    None when the part before `#` is neither an .mcap file name nor a folder holding .mcap
    files (a rosbag2 recording)."""
    path, sep, topic = spec.strip().partition("#")
    if not (path.lower().endswith(".mcap") or _bag_folder(Path(path))):
        return None
    return path, ("/" + topic.strip().lstrip("/")) if sep else None


def _bag_folder(path: Path) -> bool:
    return path.is_dir() and ((path / METADATA).is_file()
                              or any(p.suffix.lower() == ".mcap" for p in path.iterdir()))


def bag_files(path: Path) -> list[Path]:
    """The .mcap files of a recording: the file itself, or a rosbag2 folder's files in
    order: those its metadata.yaml lists, in its order, then any it does not list (a
    recorder killed before it rewrote the metadata), in natural order (`NAME_0.mcap`,
    `NAME_1.mcap`, ..., the order without a metadata.yaml)."""
    if path.is_file():
        return [path]
    if _bag_folder(path):
        try:
            listed = listed_files(path) or []
        except ValueError as exc:
            raise RtsegError(f"cannot replay {path}: {exc}") from None
        if missing := [name for name in listed if not (path / name).is_file()]:
            raise RtsegError(f"cannot replay {path}: its {METADATA} lists {', '.join(missing)}, "
                             "not in the folder; restore the files, or replay the others one "
                             "by one (--source FILE.mcap)")
        rest = sorted((p for p in path.iterdir()
                       if p.suffix.lower() == ".mcap" and p.name not in listed), key=natural_key)
        return [path / name for name in listed] + rest
    if path.is_dir():
        raise RtsegError(f"{path} is not a recording: it holds no .mcap file and no {METADATA}")
    where = path.resolve().parent
    raise RtsegError(f"recording {path} not found (looked in {where}): check the path")


def camera_name(topic: str) -> str:
    """A topic name for the camera behind an image topic: `/front/image_raw/compressed` ->
    `front`, `/demo/image` -> `demo`, `/image` -> `image`."""
    parts = [p for p in topic.strip("/").split("/") if p]
    while len(parts) > 1 and parts[-1] in _IMAGE_WORDS:
        parts.pop()
    return sanitise("_".join(parts))


class BagSource(FileSource):
    """Images of one topic of a recording, decoded to `(H, W, 3) uint8 BGR`."""

    def __init__(self, path: Path, topic: str | None, spec: SourceSpec) -> None:
        self._path = path
        self._files = bag_files(path)
        self.topic = _choose(path, list_image_topics(self._files), topic)
        self._decode_cdr = None
        self._recorded = spec.recorded_stamps
        self._stamp_ns: int | None = None  # of the message decoded last
        # Paced replays: the message stepped over but not delivered yet, the clock and the
        # first and last log times of the first pass, and how far loops have shifted them.
        self._held: tuple | None = None
        self._clock0: float | None = None
        self._span_ns = [0, 0]
        self._shift_ns = 0
        self._check_first()
        self._messages = self._iterate()
        fps = self.topic.fps or spec.fps
        super().__init__(camera_name(self.topic.topic), f"{path}#{self.topic.topic}", fps, spec)

    def _iterate(self):
        """(schema, channel, message) of the topic from the start, file after file."""
        for path in self._files:
            with path.open("rb") as file:
                yield from topic_messages(file, [self.topic.topic])

    def _check_first(self) -> None:
        """Decode the topic's first image now: a topic that cannot be shown fails at open,
        not frame by frame later."""
        where = f"{self._path}, topic {self.topic.topic}"
        messages = self._iterate()
        try:
            schema, channel, message = next(messages)
            image = self._decode(schema, channel, message)
        except RtsegError as error:
            raise RtsegError(f"{where}: {error}") from None
        except Exception as error:  # noqa: BLE001  (whatever the file holds)
            raise RtsegError(f"{where}: the first message cannot be read ({type(error).__name__}"
                             f": {error}); check the file with `mcap doctor`") from error
        finally:
            messages.close()
        if image is None:
            raise RtsegError(f"{where}: the first image does not decode with OpenCV; is its "
                             "format jpeg or png?")

    def _step(self, decode: bool) -> tuple[bool, np.ndarray | None]:
        raw = self._next_raw()
        if raw is None:
            return False, None
        return True, self._image(raw) if decode else None

    def _next_raw(self) -> tuple | None:
        """The next (schema, channel, message) of the topic, None at the end."""
        try:
            return next(self._messages)
        except StopIteration:
            return None
        except Exception as error:  # noqa: BLE001  (a file cut short ends the replay there)
            log.warning("%s ends early at frame %d (%s: %s); replayed up to there",
                        self._path, self._seq, type(error).__name__, error)
            return None

    def _image(self, raw: tuple) -> np.ndarray | None:
        """The image of one (schema, channel, message), None (with a warning) when it does
        not decode: one bad message is skipped, not fatal."""
        try:
            return self._decode(*raw)
        except Exception as error:  # noqa: BLE001
            log.warning("message %d of %s: %s", self._seq, self.topic.topic, error)
            return None

    def read(self, timeout: float = 1.0) -> Frame | None:
        """As `FileSource.read`, but paced by the recorded log times: each frame comes when
        its time does (a gap in the recording stays a gap), and a frame more than one
        average period late is skipped unread."""
        if not self._pace or self.exhausted or self._closed:
            return super().read(timeout)
        while True:
            if self._held is None:
                self._held = self._next_in_replay()
                if self._held is None:
                    self.exhausted = True
                    return None
            late = time.monotonic() - self._due_at(self._held[2].log_time)
            if late < -timeout:
                time.sleep(max(0.0, timeout))
                return None
            time.sleep(max(0.0, -late))
            raw, self._held = self._held, None
            decode = late <= 1.0 / self.fps
            frame = self._account(decode, self._image(raw) if decode else None)
            if frame is not None:
                return frame

    def _next_in_replay(self) -> tuple | None:
        """The next message of a paced replay; at the end, looping, the first again, its
        time shifted to follow the last by one average period."""
        raw = self._next_raw()
        if raw is None and self._loop and self._seen_since_rewind and self._rewind():
            self._seen_since_rewind = False
            self._shift_ns += self._span_ns[1] - self._span_ns[0] + round(1e9 / self.fps)
            raw = self._next_raw()
        if raw is not None:
            self._seen_since_rewind = True
        return raw

    def _due_at(self, log_time: int) -> float:
        """`time.monotonic()` at which a message logged at `log_time` is due."""
        if self._clock0 is None:
            self._clock0, self._span_ns = time.monotonic(), [log_time, log_time]
        self._span_ns[1] = max(self._span_ns[1], log_time)
        return self._clock0 + (log_time - self._span_ns[0] + self._shift_ns) / 1e9

    def _decode(self, schema, channel, message) -> np.ndarray | None:
        """One message's image, `(H, W, 3) uint8 BGR`, or None when it does not decode; its
        capture time (header.stamp; the log time where that is zero) into `_stamp_ns`."""
        if self._decode_cdr is None:
            from mcap_ros2.decoder import DecoderFactory

            self._decode_cdr = DecoderFactory().decoder_for(channel.message_encoding, schema)
            if self._decode_cdr is None:
                raise RtsegError(f"{self.topic.topic} is not CDR-encoded ROS 2 "
                                 f"({channel.message_encoding!r}); record it with ROS 2")
        msg = self._decode_cdr(message.data)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self._stamp_ns = stamp or message.log_time
        if self.topic.type == COMPRESSED_TYPE:
            return cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
        return raw_image(msg.height, msg.width, msg.encoding, msg.step, msg.data)

    def _recorded_stamp_ns(self) -> int | None:
        return self._stamp_ns if self._recorded else None

    def _rewind(self) -> bool:
        self._messages.close()
        self._messages = self._iterate()
        return True

    def close(self) -> None:
        super().close()
        self._messages.close()  # closes the open file


def raw_image(height: int, width: int, encoding: str, step: int, data: bytes) -> np.ndarray:
    """A `sensor_msgs/msg/Image` as `(H, W, 3) uint8 BGR`; rows may be padded (`step`)."""
    if encoding not in RAW_ENCODINGS:
        raise RtsegError(f"image encoding {encoding!r} is not supported (supported: "
                         f"{', '.join(RAW_ENCODINGS)}); convert it, e.g. with image_proc")
    channels, conversion = RAW_ENCODINGS[encoding]
    row = width * channels
    if step < row or len(data) < step * (height - 1) + row:
        raise RtsegError(f"a {height}x{width} {encoding} image needs rows of {row} bytes; "
                         f"the message has step {step} and {len(data)} bytes")
    flat = np.frombuffer(data, np.uint8)
    rows = np.lib.stride_tricks.as_strided(flat, (height, row), (step, 1))
    image = rows.reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image, conversion)


def list_image_topics(files: list[Path]) -> list[TopicCount]:
    """The image topics of a recording's files (rtseg.bag_census), merged over the files;
    in a file with `rtseg record`'s metadata the mask and overlay topics are no cameras."""
    censuses = []
    for path in files:
        census = file_census(path)
        topics = [t for t in census.topics if t.type in (IMAGE_TYPE, COMPRESSED_TYPE)]
        if "rtseg" in census.metadata:
            topics = [replace(t, camera=t.topic.rpartition("/")[2] not in DRAWN_KINDS)
                      for t in topics]
        censuses.append(replace(census, topics=tuple(topics)))
    return merged_topics(censuses)


def _choose(path: Path, topics: list[TopicCount], wanted: str | None) -> TopicCount:
    """The topic asked for, or the only camera topic (an rtseg recording's masks are not
    cameras); RtsegError naming the choices."""
    names = ", ".join(sorted(t.topic for t in topics)) or "none"
    cameras = [t for t in topics if t.camera]
    if wanted is not None:
        match = next((t for t in topics if t.topic == wanted), None)
        if match is None:
            raise RtsegError(f"{path} has no image topic {wanted} (its image topics: {names})")
    elif len(cameras) != 1:
        if not topics:
            raise RtsegError(f"{path} holds no {IMAGE_TYPE} or {COMPRESSED_TYPE} messages: "
                             "nothing to replay")
        raise RtsegError(f"{path} has {len(topics)} image topics ({names}): pick one with "
                         f"--source '{path}#TOPIC'")
    else:
        match = cameras[0]
    if match.count == 0:
        raise RtsegError(f"{path}: topic {match.topic} has no messages")
    return match
