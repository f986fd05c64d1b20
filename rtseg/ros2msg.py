"""rtseg messages as ROS 2 messages, for MCAP files that Foxglove and ``ros2 bag`` read
without ROS installed: masks as ``sensor_msgs/msg/Image`` (mono8), frames as
``sensor_msgs/msg/CompressedImage`` (jpeg), status heartbeats as
``diagnostic_msgs/msg/DiagnosticArray``. The message definitions are the ROS 2 ones in
the ``ros2msg`` schema encoding: the message, then each dependency after a ``====`` line.
No torch, no ROS.
"""

from __future__ import annotations

import re

import numpy as np

from rtseg.protocol import MaskHeader
from rtseg.status import NodeStatus

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
_SEPARATOR = "=" * 80
_HEADER_DEPS = f"""{_SEPARATOR}
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
{_SEPARATOR}
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""
IMAGE_MSGDEF = f"""std_msgs/Header header
uint32 height
uint32 width
string encoding
uint8 is_bigendian
uint32 step
uint8[] data
{_HEADER_DEPS}"""
COMPRESSED_MSGDEF = f"""std_msgs/Header header
string format
uint8[] data
{_HEADER_DEPS}"""
DIAGNOSTIC_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
DIAGNOSTIC_MSGDEF = f"""std_msgs/Header header
DiagnosticStatus[] status
{_SEPARATOR}
MSG: diagnostic_msgs/DiagnosticStatus
byte OK=0
byte WARN=1
byte ERROR=2
byte STALE=3
byte level
string name
string message
string hardware_id
KeyValue[] values
{_SEPARATOR}
MSG: diagnostic_msgs/KeyValue
string key
string value
{_HEADER_DEPS}"""
MSGDEFS = {IMAGE_TYPE: IMAGE_MSGDEF, COMPRESSED_TYPE: COMPRESSED_MSGDEF,
           DIAGNOSTIC_TYPE: DIAGNOSTIC_MSGDEF}
# DiagnosticStatus levels of a node's and a source's states (rtseg.status)
LEVELS = {"running": 0, "stopping": 0, "ok": 0, "reconnecting": 2, "ended": 3}


def ros_topic(topic: str) -> str:
    """``demo/drivable`` -> ``/demo/drivable``; characters ROS names do not allow become
    ``_`` (a name part starting with a digit gets a leading ``_``)."""
    parts = [re.sub(r"[^A-Za-z0-9_]", "_", part) for part in topic.strip("/").split("/")]
    return "/" + "/".join(f"_{p}" if p[:1].isdigit() else p for p in parts)


def ros_header(header: MaskHeader) -> dict:
    """``std_msgs/Header``: the frame's capture stamp (sec, nanosec) and its frame_id."""
    sec, nanosec = divmod(header.stamp_ns, 1_000_000_000)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": header.frame_id}


def status_to_ros(status: NodeStatus) -> dict:
    """A `NODE/status` heartbeat as ``diagnostic_msgs/DiagnosticArray`` (what Foxglove's
    Diagnostics panel and ``rqt_runtime_monitor`` show): one DiagnosticStatus for the node
    (``rtseg/NODE``, level OK) and one per source (``rtseg/NODE/SOURCE``: OK, ERROR while
    reconnecting, STALE once ended) with its fps, dropped frames and last seq."""
    sec, nanosec = divmod(status.stamp_ns, 1_000_000_000)
    entries = [{"level": LEVELS[status.state], "name": f"rtseg/{status.node}",
                "message": status.state, "hardware_id": "", "values": []}]
    for source in status.sources:
        values = {"fps": f"{source.fps:.2f}", "dropped": str(source.dropped),
                  "last_seq": str(source.last_seq)}
        entries.append({"level": LEVELS[source.state],
                        "name": f"rtseg/{status.node}/{source.name}", "message": source.state,
                        "hardware_id": source.name,
                        "values": [{"key": k, "value": v} for k, v in values.items()]})
    return {"header": {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": status.node},
            "status": entries}


def message_type(header: MaskHeader) -> str:
    """The ROS 2 type a message of this kind is written as."""
    return COMPRESSED_TYPE if header.kind == "image" else IMAGE_TYPE


def to_ros(header: MaskHeader, data: np.ndarray) -> dict:
    """A decoded rtseg message as a ROS 2 message dict.

    Args:
        data: a mask ``(H, W) uint8`` (values as on the wire: 0/1 for drivable, class
            indices and 255 = no prediction for classes) or, for an image, the JPEG file
            ``(N,) uint8``.
    """
    if header.kind == "image":
        return {"header": ros_header(header), "format": "jpeg", "data": data.tobytes()}
    height, width = data.shape
    return {"header": ros_header(header), "height": height, "width": width,
            "encoding": "mono8", "is_bigendian": 0, "step": width,
            "data": np.ascontiguousarray(data).tobytes()}
