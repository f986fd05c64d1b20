"""Replay a recording: `rtseg run --source drive.mcap[#TOPIC]`.

An MCAP file of ROS 2 messages (rosbag2's default storage since Iron, Foxglove's
recordings, `rtseg record`'s `/NAME/image`) is a file source like a video
(`rtseg.stream.file_sources`): every frame of TOPIC arrives, in log-time order, unless
paced or looped. TOPIC is a `sensor_msgs/msg/CompressedImage` (any format OpenCV decodes:
jpeg, png) or `sensor_msgs/msg/Image` channel (encodings in `RAW_ENCODINGS`); without
`#TOPIC` the file must hold exactly one image topic. The pace is the topic's average rate
(its message count over its time span). A file cut short (a recorder killed mid-write)
plays up to where it ends.

Frames carry the wall clock at read as their stamp, as from a video file: the recording's
own stamps stay in the recording.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rtseg.errors import RtsegError
from rtseg.stream.file_sources import FileSource
from rtseg.stream.sources import SourceSpec, sanitise

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
# encoding -> (channels, OpenCV conversion to BGR or None)
RAW_ENCODINGS = {
    "bgr8": (3, None), "rgb8": (3, cv2.COLOR_RGB2BGR), "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR), "mono8": (1, cv2.COLOR_GRAY2BGR),
    "8UC1": (1, cv2.COLOR_GRAY2BGR), "8UC3": (3, None),
}
# Trailing topic parts that name the image, not the camera: /front/image_raw -> front.
_IMAGE_WORDS = {"image", "image_raw", "image_color", "image_rect", "image_rect_color",
                "compressed", "color", "raw"}
BAG_PATTERN = re.compile(r"(?P<path>.+\.mcap)(?:#(?P<topic>.*))?", re.IGNORECASE)


def split_bag_spec(spec: str) -> tuple[str, str | None] | None:
    """`drive.mcap#/front/image` -> ("drive.mcap", "/front/image"); no `#`: topic None;
    not an .mcap spec: None."""
    match = BAG_PATTERN.fullmatch(spec.strip())
    if match is None:
        return None
    topic = match.group("topic")
    if topic is not None:
        topic = "/" + topic.strip().lstrip("/")
    return match.group("path"), topic


def camera_name(topic: str) -> str:
    """A topic name for the camera behind an image topic: `/front/image_raw/compressed` ->
    `front`, `/demo/image` -> `demo`, `/image` -> `image`."""
    parts = [p for p in topic.strip("/").split("/") if p]
    while len(parts) > 1 and parts[-1] in _IMAGE_WORDS:
        parts.pop()
    return sanitise("_".join(parts))


@dataclass(frozen=True)
class ImageTopic:
    """One image channel of a file: topic, ROS type, message count and span in ns."""

    topic: str
    type: str
    count: int
    span_ns: int

    @property
    def fps(self) -> float | None:
        """Average rate, None when the topic has fewer than two messages or no span."""
        return (self.count - 1) * 1e9 / self.span_ns if self.count > 1 and self.span_ns else None


class BagSource(FileSource):
    """Images of one topic of an MCAP file, decoded to `(H, W, 3) uint8 BGR`."""

    def __init__(self, path: Path, topic: str | None, spec: SourceSpec) -> None:
        if not path.is_file():
            raise RtsegError(f"recording {path} not found (looked in {path.resolve().parent}): "
                             "check the path")
        self._path = path
        self._file = path.open("rb")
        try:
            topics, self._indexed = list_image_topics(self._file)
            self.topic = _choose(path, topics, topic)
            self._decode_cdr = None
            self._check_first()
            self._messages = self._iterate()
        except BaseException:
            self._file.close()
            raise
        fps = self.topic.fps or spec.fps
        super().__init__(camera_name(self.topic.topic), f"{path}#{self.topic.topic}", fps, spec)

    def _iterate(self):
        """(schema, channel, message) of the topic from the start: in log-time order, or
        for a file without an index in the order written (sorting would read it all)."""
        from mcap.reader import NonSeekingReader, make_reader

        self._file.seek(0)
        if self._indexed:
            return make_reader(self._file).iter_messages(topics=[self.topic.topic])
        return NonSeekingReader(self._file).iter_messages(topics=[self.topic.topic],
                                                          log_time_order=False)

    def _check_first(self) -> None:
        """Decode the topic's first image now: a topic that cannot be shown fails at open,
        not frame by frame later."""
        where = f"{self._path}, topic {self.topic.topic}"
        try:
            schema, channel, message = next(self._iterate())
            image = self._decode(schema, channel, message.data)
        except RtsegError as error:
            raise RtsegError(f"{where}: {error}") from None
        except Exception as error:  # noqa: BLE001  (whatever the file holds)
            raise RtsegError(f"{where}: the first message cannot be read ({type(error).__name__}"
                             f": {error}); check the file with `mcap doctor`") from error
        if image is None:
            raise RtsegError(f"{where}: the first image does not decode with OpenCV; is its "
                             "format jpeg or png?")

    def _step(self, decode: bool) -> tuple[bool, np.ndarray | None]:
        try:
            schema, channel, message = next(self._messages)
        except StopIteration:
            return False, None
        except Exception as error:  # noqa: BLE001  (a file cut short ends the replay there)
            log.warning("%s ends early at frame %d (%s: %s); replayed up to there",
                        self._path, self._seq, type(error).__name__, error)
            return False, None
        if not decode:
            return True, None
        try:
            return True, self._decode(schema, channel, message.data)
        except Exception as error:  # noqa: BLE001  (one bad message is skipped, not fatal)
            log.warning("message %d of %s: %s", self._seq, self.topic.topic, error)
            return True, None

    def _decode(self, schema, channel, data: bytes) -> np.ndarray | None:
        """One message's image, `(H, W, 3) uint8 BGR`, or None when it does not decode."""
        if self._decode_cdr is None:
            from mcap_ros2.decoder import DecoderFactory

            self._decode_cdr = DecoderFactory().decoder_for(channel.message_encoding, schema)
            if self._decode_cdr is None:
                raise RtsegError(f"{self.topic.topic} is not CDR-encoded ROS 2 "
                                 f"({channel.message_encoding!r}); record it with ROS 2")
        msg = self._decode_cdr(data)
        if self.topic.type == COMPRESSED_TYPE:
            return cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
        return raw_image(msg.height, msg.width, msg.encoding, msg.step, msg.data)

    def _rewind(self) -> bool:
        self._messages = self._iterate()
        return True

    def close(self) -> None:
        super().close()
        self._file.close()


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


def list_image_topics(file) -> tuple[list[ImageTopic], bool]:
    """The image channels of an open MCAP file, and whether it is indexed: from its summary,
    or for a file without one (a recording cut short), from a pass over its messages."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    try:
        reader = make_reader(file)  # reads the magic bytes
    except (McapError, ValueError, EOFError) as error:
        raise RtsegError(f"{getattr(file, 'name', 'file')} is not a readable MCAP file "
                         f"({error}); check it with `mcap info`") from error
    try:
        summary = reader.get_summary()
    except Exception:  # noqa: BLE001  (a torn footer: read the file from the start instead)
        summary = None
    if summary is not None and summary.statistics is not None and summary.chunk_indexes:
        return _from_summary(summary), True
    return _by_scanning(file), False


def _from_summary(summary) -> list[ImageTopic]:
    stats = summary.statistics
    found = []
    for channel_id, channel in summary.channels.items():
        schema = summary.schemas.get(channel.schema_id)
        if schema is not None and schema.name in (IMAGE_TYPE, COMPRESSED_TYPE):
            count = stats.channel_message_counts.get(channel_id, 0)
            span = _span_from_indexes(summary, channel_id)
            found.append(ImageTopic(channel.topic, schema.name, count, span))
    return found


def _span_from_indexes(summary, channel_id: int) -> int:
    """The channel's time span from the chunk indexes (whole chunks: a fair estimate)."""
    starts = [c.message_start_time for c in summary.chunk_indexes
              if channel_id in c.message_index_offsets]
    ends = [c.message_end_time for c in summary.chunk_indexes
            if channel_id in c.message_index_offsets]
    return max(ends) - min(starts) if starts else 0


def _by_scanning(file) -> list[ImageTopic]:
    """Image topics of a file without a summary (a recording cut short)."""
    from mcap.reader import NonSeekingReader

    file.seek(0)
    seen: dict[str, list] = {}
    try:
        for schema, channel, message in NonSeekingReader(file).iter_messages(
                log_time_order=False):
            if schema is not None and schema.name in (IMAGE_TYPE, COMPRESSED_TYPE):
                entry = seen.setdefault(channel.topic,
                                        [schema.name, 0, message.log_time, message.log_time])
                entry[1] += 1
                entry[2] = min(entry[2], message.log_time)
                entry[3] = max(entry[3], message.log_time)
    except Exception as error:  # noqa: BLE001  (cut short: what was read counts)
        log.warning("%s ends early (%s: %s); using what precedes it",
                    getattr(file, "name", "file"), type(error).__name__, error)
    return [ImageTopic(topic, kind, count, last - first)
            for topic, (kind, count, first, last) in seen.items()]


def _choose(path: Path, topics: list[ImageTopic], wanted: str | None) -> ImageTopic:
    """The topic asked for, or the only image topic; RtsegError naming the choices."""
    names = ", ".join(sorted(t.topic for t in topics)) or "none"
    if wanted is not None:
        match = next((t for t in topics if t.topic == wanted), None)
        if match is None:
            raise RtsegError(f"{path} has no image topic {wanted} (its image topics: {names})")
    elif len(topics) != 1:
        if not topics:
            raise RtsegError(f"{path} holds no {IMAGE_TYPE} or {COMPRESSED_TYPE} messages: "
                             "nothing to replay")
        raise RtsegError(f"{path} has {len(topics)} image topics ({names}): pick one with "
                         f"--source '{path}#TOPIC'")
    else:
        match = topics[0]
    if match.count == 0:
        raise RtsegError(f"{path}: topic {match.topic} has no messages")
    return match
