"""Where `rtseg record` writes: one MCAP file (`--out run.mcap`), or a rosbag2 folder
(`--out run`: `run/run_0.mcap`, ... and `run/metadata.yaml`, rtseg.rosbag2) split into a
new file past `split_bytes` or `split_ns` of log time, like `ros2 bag record
--max-bag-size / --max-bag-duration`, optionally keeping only the newest files (a rolling
recording).

Every file is a complete MCAP file (profile ``ros2``) of CDR ROS 2 messages, encoded by
rtseg.ros2msg.encoders (one schema per ROS type, a channel per topic, zstd chunks, summary
and footer), with the `rtseg`
metadata record (endpoint, class names of each classes topic). A folder's metadata.yaml
is rewritten after each file is finished, so a recorder killed later still leaves the
finished files listed. A write the disk refuses (full, gone) is an RtsegError naming the
file; what reached the disk before stays readable (a cut file replays up to the cut). No
torch here.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from rtseg.bag_census import RTSEG_METADATA, classes_key
from rtseg.errors import RtsegError
from rtseg.ros2msg import (
    DIAGNOSTIC_TYPE,
    MSGDEFS,
    encoders,
    message_type,
    ros_topic,
    status_to_ros,
    to_ros,
)
from rtseg.rosbag2 import METADATA, BagFile, write_metadata
from rtseg.status import NodeStatus

log = logging.getLogger("rtseg.record")
CHUNK_BYTES = 1 << 20  # mcap_ros2's default chunk size


class RosWriter:
    """The MCAP writer (the `mcap` package) of ROS 2 messages: a schema per ROS type of
    `MSGDEFS`, a channel per topic, messages encoded by rtseg.ros2msg.encoders."""

    def __init__(self, stream, chunk_bytes: int) -> None:
        from mcap.writer import CompressionType, Writer

        from rtseg import __version__

        self._writer = Writer(stream, chunk_size=chunk_bytes, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library=f"rtseg {__version__}")
        self._schemas = {name: self._writer.register_schema(name, "ros2msg", text.encode())
                         for name, text in MSGDEFS.items()}
        self._encoders = encoders()
        self._channels: dict[str, int] = {}

    def write(self, topic: str, ros_type: str, message: dict, log_time_ns: int,
              sequence: int = 0) -> None:
        """`message` (a ROS message dict of `ros_type`) on `topic`, logged at `log_time_ns`."""
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="cdr", schema_id=self._schemas[ros_type])
        self._writer.add_message(channel_id=channel, log_time=log_time_ns,
                                 publish_time=log_time_ns, sequence=sequence,
                                 data=self._encoders[ros_type](message))

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        self._writer.add_metadata(name, data)

    def finish(self) -> None:
        self._writer.finish()


class McapBag:
    """One MCAP file of ROS 2 messages (RosWriter); `info` counts what went in
    (rtseg.rosbag2). `meta` is the `rtseg` metadata record's contents, shared by the files
    of a folder."""

    deleted = 0  # files deleted to keep --max-files: none in a single file

    def __init__(self, path: Path, meta: dict[str, str], chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        self.info = BagFile(self.path.name)
        self._meta = meta
        self._file = open(self.path, "wb")  # noqa: SIM115  (closed in finish)
        self._writer = RosWriter(self._file, chunk_bytes)
        self._broken = False  # a write failed: finish only closes the file

    @property
    def files(self) -> list[Path]:
        return [self.path]

    @property
    def size(self) -> int:
        """Bytes in the file so far (whole chunks: the open chunk is still in memory)."""
        return self._file.tell()

    def write(self, header, data, log_time_ns: int) -> None:
        """One decoded rtseg message (`rtseg.ros2msg.to_ros`) as one MCAP message."""
        topic = ros_topic(header.topic)
        if header.kind == "classes":
            self._meta[classes_key(topic)] = json.dumps(list(header.classes))
        ros_type = message_type(header)
        with self._writing():
            self._writer.write(topic, ros_type, to_ros(header, data), log_time_ns,
                               header.seq % 2**32)
        self.info.add(topic, ros_type, log_time_ns)

    def write_status(self, status: NodeStatus, log_time_ns: int) -> None:
        """A `NODE/status` heartbeat as one DiagnosticArray message (rtseg.ros2msg)."""
        topic = ros_topic(status.topic)
        with self._writing():
            self._writer.write(topic, DIAGNOSTIC_TYPE, status_to_ros(status), log_time_ns)
        self.info.add(topic, DIAGNOSTIC_TYPE, log_time_ns)

    def write_ros(self, topic: str, ros_type: str, message: dict, log_time_ns: int,
                  seq: int = 0) -> None:
        """A ROS message dict of `ros_type` (one of rtseg.ros2msg.MSGDEFS) on `topic` (a
        ROS name: an occupancy grid, a camera info, a transform)."""
        with self._writing():
            self._writer.write(topic, ros_type, message, log_time_ns, seq % 2**32)
        self.info.add(topic, ros_type, log_time_ns)

    @contextlib.contextmanager
    def _writing(self):
        """OSError (a full disk, a file gone) -> RtsegError naming the file and the way on."""
        try:
            yield
        except OSError as exc:
            self._broken = True
            raise write_error(self.path, exc) from None

    def finish(self) -> None:
        """Write the metadata, the summary and the footer, and close the file (after a
        failed write: only close it; it ends where the disk stopped taking it)."""
        if self._file.closed:
            return
        try:
            if not self._broken:
                with self._writing():
                    self._writer.add_metadata(RTSEG_METADATA, dict(self._meta))
                    self._writer.finish()
        finally:
            with contextlib.suppress(OSError):  # its buffer's flush failed already
                self._file.close()


def write_error(path: Path, exc: OSError) -> RtsegError:
    return RtsegError(f"cannot write {path}: {exc.strerror or exc}; what reached the disk "
                      "stays readable (a cut file replays up to the cut: rtseg run --source); "
                      "free space or record elsewhere (--out)")


@dataclass(frozen=True)
class Split:
    """When a folder's file is full: at `bytes`, or spanning `ns` of log time (None: never);
    `max_files`: keep only the newest this many files, the open one included (None: all)."""

    bytes: int | None = None
    ns: int | None = None
    max_files: int | None = None


class BagFolder:
    """A rosbag2 folder `folder` of MCAP files `FOLDER_0.mcap`, `FOLDER_1.mcap`, ...: a
    message goes to a new file once the current one is full (`split`); with
    `split.max_files` the oldest finished file is deleted as a new one opens (a rolling
    recording of the last files, as a dashcam keeps)."""

    def __init__(self, folder: Path, meta: dict[str, str], split: Split = Split()) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(exist_ok=True)
        self._meta = meta
        self._split = split
        # A chunk is the unit in which the file grows: keep it well under the split size.
        self._chunk = min(CHUNK_BYTES, max(4096, split.bytes // 4)) if split.bytes else (
            CHUNK_BYTES)
        self._finished: list[BagFile] = []
        self._opened = 0  # files opened so far: the next file's number
        self.deleted = 0  # files deleted to keep split.max_files
        self._bag = self._open()

    @property
    def files(self) -> list[Path]:
        return [self.folder / b.name for b in self._finished] + (
            [self._bag.path] if self._bag is not None else [])

    def _open(self) -> McapBag:
        name = f"{self.folder.name}_{self._opened}.mcap"
        self._opened += 1
        return McapBag(self.folder / name, self._meta, self._chunk)

    def _full(self, log_time_ns: int) -> bool:
        info, split = self._bag.info, self._split
        if not info.messages:
            return False
        if split.bytes is not None and self._bag.size >= split.bytes:
            return True
        return split.ns is not None and log_time_ns - info.first_ns >= split.ns

    def _trim(self) -> None:
        """Delete the oldest finished files beyond `split.max_files` (the open one counts)."""
        keep = self._split.max_files
        while keep is not None and len(self._finished) >= keep:
            oldest = self._finished.pop(0)
            (self.folder / oldest.name).unlink(missing_ok=True)
            self.deleted += 1
            log.info("deleted %s (--max-files %d)", oldest.name, keep)

    def _file_for(self, log_time_ns: int) -> McapBag:
        """The file a message logged at `log_time_ns` goes to: a new one where it is full."""
        if self._full(log_time_ns):
            self._bag.finish()
            self._finished.append(self._bag.info)
            self._trim()
            self._write_metadata()
            self._bag = self._open()
        return self._bag

    def _write_metadata(self) -> None:
        try:
            write_metadata(self.folder, self._finished)
        except OSError as exc:
            raise write_error(self.folder / METADATA, exc) from None

    def write(self, header, data, log_time_ns: int) -> None:
        """Write one mask or image message (McapBag.write)."""
        self._file_for(log_time_ns).write(header, data, log_time_ns)

    def write_status(self, status: NodeStatus, log_time_ns: int) -> None:
        """Write one status heartbeat (McapBag.write_status)."""
        self._file_for(log_time_ns).write_status(status, log_time_ns)

    def write_ros(self, topic: str, ros_type: str, message: dict, log_time_ns: int,
                  seq: int = 0) -> None:
        """Write one ROS message (McapBag.write_ros)."""
        self._file_for(log_time_ns).write_ros(topic, ros_type, message, log_time_ns, seq)

    def finish(self) -> None:
        """Finish the open file and write metadata.yaml listing every file."""
        if self._bag is None:
            return
        bag, self._bag = self._bag, None
        try:
            bag.finish()
        finally:
            self._finished.append(bag.info)
            self._write_metadata()


def open_bag(out: str, endpoint: str, split: Split = Split()) -> McapBag | BagFolder:
    """`out` ending in .mcap: one file; else the rosbag2 folder `out` (split as asked)."""
    meta = {"endpoint": endpoint}
    if out.lower().endswith(".mcap"):
        return McapBag(Path(out), meta)
    return BagFolder(Path(out), meta, split)
