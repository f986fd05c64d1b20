"""The rosbag2 folder layout: `NAME/NAME_0.mcap`, `NAME_1.mcap`, ... and `NAME/metadata.yaml`.

`ros2 bag info NAME` and `ros2 bag play NAME` start from `metadata.yaml`: which storage
plugin reads the files (`mcap`), the files in playing order, and per topic its ROS type,
serialisation (`cdr`) and message count; per file its message count and time span. It is
written here in version 5 of the format (the one ROS 2 Humble writes; every later rosbag2
reads it). Times are the messages' log times, in nanoseconds since the epoch.

`listed_files` reads a folder's playing order back for replay (`rtseg.stream.bag_source`).
No torch, no ROS, nothing of rtseg's wire: the recorder and the replay both use this.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

METADATA = "metadata.yaml"
VERSION = 5


@dataclass
class BagFile:
    """What one file of a rosbag2 folder holds: messages per topic, its topics' ROS types
    (in order of first message), and the log times of its first and last message."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    first_ns: int | None = None
    last_ns: int | None = None

    def add(self, topic: str, ros_type: str, log_time_ns: int) -> None:
        """Count one message of `topic` (ROS type `ros_type`) logged at `log_time_ns`."""
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self.types.setdefault(topic, ros_type)
        if self.first_ns is None or log_time_ns < self.first_ns:
            self.first_ns = log_time_ns
        if self.last_ns is None or log_time_ns > self.last_ns:
            self.last_ns = log_time_ns

    @property
    def messages(self) -> int:
        return sum(self.counts.values())


def _span(first: int | None, last: int | None) -> tuple[dict, dict]:
    start = first if first is not None else 0
    duration = (last - first) if first is not None and last is not None else 0
    return {"nanoseconds_since_epoch": start}, {"nanoseconds": duration}


def bag_information(files: Sequence[BagFile]) -> dict:
    """The `rosbag2_bagfile_information` mapping of a folder holding `files`, in order."""
    counts: dict[str, int] = {}
    types: dict[str, str] = {}
    for bag in files:
        for topic, n in bag.counts.items():
            counts[topic] = counts.get(topic, 0) + n
            types.setdefault(topic, bag.types[topic])
    firsts = [b.first_ns for b in files if b.first_ns is not None]
    lasts = [b.last_ns for b in files if b.last_ns is not None]
    starting, duration = _span(min(firsts, default=None), max(lasts, default=None))
    topics = [{"topic_metadata": {"name": topic, "type": types[topic],
                                  "serialization_format": "cdr", "offered_qos_profiles": ""},
               "message_count": n} for topic, n in counts.items()]
    per_file = []
    for bag in files:
        file_start, file_duration = _span(bag.first_ns, bag.last_ns)
        per_file.append({"path": bag.name, "starting_time": file_start,
                         "duration": file_duration, "message_count": bag.messages})
    return {"version": VERSION, "storage_identifier": "mcap",
            "duration": duration, "starting_time": starting,
            "message_count": sum(counts.values()), "topics_with_message_count": topics,
            "compression_format": "", "compression_mode": "",
            "relative_file_paths": [b.name for b in files], "files": per_file}


def write_metadata(folder: Path, files: Sequence[BagFile]) -> Path:
    """Write (replace atomically) `folder/metadata.yaml` for `files`; returns its path."""
    import yaml

    path = folder / METADATA
    text = yaml.safe_dump({"rosbag2_bagfile_information": bag_information(files)},
                          sort_keys=False, default_flow_style=False)
    tmp = path.with_name(f".{METADATA}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def listed_files(folder: Path) -> list[str] | None:
    """The file names a rosbag2 folder's `metadata.yaml` lists, in playing order; None
    without one. Raises ValueError for a file that is not rosbag2 metadata, naming why."""
    import yaml

    path = folder / METADATA
    if not path.is_file():
        return None
    try:
        info = yaml.safe_load(path.read_text())["rosbag2_bagfile_information"]
        storage = info.get("storage_identifier", "")
        names = [PurePath(str(p)).name for p in info["relative_file_paths"]]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not rosbag2 metadata ({type(exc).__name__}: {exc})") from None
    if str(info.get("compression_mode", "")).upper() == "FILE":
        raise ValueError(f"{path}: the files are compressed whole (compression_mode FILE); "
                         "decompress them with `ros2 bag convert` first")
    if storage != "mcap":
        raise ValueError(f"{path}: storage {storage!r}, not mcap; convert the recording with "
                         "`ros2 bag convert` (output storage_id: mcap)")
    return names
