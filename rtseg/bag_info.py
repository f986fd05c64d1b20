"""`rtseg info RECORDING`: what an MCAP file or a rosbag2 folder holds, like `ros2 bag info`
without ROS: files and sizes, time span, per topic its ROS type, message count and rate,
and for `rtseg record`'s files the endpoint and class names it recorded (its `rtseg`
metadata record). A file cut short (no summary) is counted up to where it ends and said to
be so. Read from the files' summaries (rtseg.bag_census): nothing is decoded. No torch.
"""

from __future__ import annotations

import time
from pathlib import Path

from rtseg.bag_census import RTSEG_METADATA, file_census, merged_topics, recorded_classes
from rtseg.rosbag2 import METADATA
from rtseg.stream.bag_source import bag_files

_LABEL = 19  # width of the labels column, as `ros2 bag info` prints it


def recording_info(path: str) -> dict:
    """The facts of the recording at `path` (a .mcap file or a rosbag2 folder), JSON-able."""
    where = Path(path)
    censuses = [file_census(file) for file in bag_files(where)]
    topics = merged_topics(censuses)
    spans = [(t.start_ns, t.end_ns) for t in topics if t.count]
    start = min((s for s, _ in spans), default=0)
    end = max((e for _, e in spans), default=0)
    recorder = next((c.metadata[RTSEG_METADATA] for c in censuses
                     if RTSEG_METADATA in c.metadata), None)
    return {
        "path": str(where),
        "rosbag2_metadata": where.is_dir() and (where / METADATA).is_file(),
        "files": [{"path": str(c.path), "bytes": c.size, "complete": c.complete,
                   "messages": sum(t.count for t in c.topics)} for c in censuses],
        "bytes": sum(c.size for c in censuses),
        "start_ns": start, "end_ns": end, "duration_s": (end - start) / 1e9,
        "messages": sum(t.count for t in topics),
        "topics": [{"topic": t.topic, "type": t.type, "count": t.count,
                    "hz": None if t.fps is None else round(t.fps, 3)} for t in topics],
        "rtseg": recorder,
    }


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    raise AssertionError("unreachable")


def _when(ns: int) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 10**9))
    return f"{stamp}.{ns % 10**9 // 10**6:03d} UTC ({ns // 10**9}.{ns % 10**9:09d})"


def _rows(label: str, lines: list[str]) -> list[str]:
    pad = " " * _LABEL
    return [f"{label + ':':<{_LABEL}}{lines[0]}"] + [pad + line for line in lines[1:]]


def format_info(info: dict) -> str:
    """`recording_info` as lines in the layout of `ros2 bag info`."""
    files = [f"{f['path']} ({_size(f['bytes'])}, {f['messages']} messages"
             + ("" if f["complete"] else "; cut short: no summary, counted to where it ends")
             + ")" for f in info["files"]]
    storage = "mcap" + (f" (rosbag2 folder with {METADATA})" if info["rosbag2_metadata"] else "")
    topics = [f"Topic: {t['topic']} | Type: {t['type']} | Count: {t['count']}"
              + (f" | {t['hz']:.2f} Hz" if t["hz"] else "") for t in info["topics"]] or ["none"]
    lines = (_rows("Files", files) + _rows("Bag size", [_size(info["bytes"])])
             + _rows("Storage id", [storage])
             + _rows("Duration", [f"{info['duration_s']:.3f} s"]))
    if info["messages"]:
        lines += _rows("Start", [_when(info["start_ns"])]) + _rows("End", [_when(info["end_ns"])])
    lines += _rows("Messages", [str(info["messages"])]) + _rows("Topic information", topics)
    if info["rtseg"]:
        recorded = [f"endpoint {info['rtseg'].get('endpoint', '?')}"]
        recorded += [f"{topic} classes: {', '.join(names)}"
                     for topic, names in recorded_classes(info["rtseg"]).items()]
        lines += _rows("rtseg record", recorded)
    return "\n".join(lines)
