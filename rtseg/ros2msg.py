"""rtseg messages as ROS 2 messages, for MCAP files that Foxglove and ``ros2 bag`` read
without ROS installed: masks as ``sensor_msgs/msg/Image`` (mono8), frames as
``sensor_msgs/msg/CompressedImage`` (jpeg), status heartbeats as
``diagnostic_msgs/msg/DiagnosticArray``, drivable masks on the ground (rtseg.ground) as
``nav_msgs/msg/OccupancyGrid`` and their free space as ``sensor_msgs/msg/LaserScan``, and a
camera file's camera as ``sensor_msgs/msg/CameraInfo`` and its mount as a
``tf2_msgs/msg/TFMessage``. The message definitions are the ROS 2 ones in
the ``ros2msg`` schema encoding: the message, then each dependency after a ``====`` line.
No torch, no ROS.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from functools import cache, partial

import numpy as np

from rtseg.free_space import ScanSpec, default_scan, scan_ranges
from rtseg.grid_fusion import FUSED_SCAN_TOPIC, FUSED_TOPIC, GridFusion
from rtseg.ground import Camera, GridSpec, GroundGrid
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
_QUATERNION_DEPS = f"""{_SEPARATOR}
MSG: geometry_msgs/Quaternion
float64 x 0
float64 y 0
float64 z 0
float64 w 1
{_HEADER_DEPS}"""
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
OCCUPANCY_TYPE = "nav_msgs/msg/OccupancyGrid"
OCCUPANCY_MSGDEF = f"""std_msgs/Header header
MapMetaData info
int8[] data
{_SEPARATOR}
MSG: nav_msgs/MapMetaData
builtin_interfaces/Time map_load_time
float32 resolution
uint32 width
uint32 height
geometry_msgs/Pose origin
{_SEPARATOR}
MSG: geometry_msgs/Pose
Point position
Quaternion orientation
{_SEPARATOR}
MSG: geometry_msgs/Point
float64 x
float64 y
float64 z
{_QUATERNION_DEPS}"""
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CAMERA_INFO_MSGDEF = f"""std_msgs/Header header
uint32 height
uint32 width
string distortion_model
float64[] d
float64[9] k
float64[9] r
float64[12] p
uint32 binning_x
uint32 binning_y
RegionOfInterest roi
{_SEPARATOR}
MSG: sensor_msgs/RegionOfInterest
uint32 x_offset
uint32 y_offset
uint32 height
uint32 width
bool do_rectify
{_HEADER_DEPS}"""
SCAN_TYPE = "sensor_msgs/msg/LaserScan"
SCAN_MSGDEF = f"""std_msgs/Header header
float32 angle_min
float32 angle_max
float32 angle_increment
float32 time_increment
float32 scan_time
float32 range_min
float32 range_max
float32[] ranges
float32[] intensities
{_HEADER_DEPS}"""
TF_TYPE = "tf2_msgs/msg/TFMessage"
TF_MSGDEF = f"""geometry_msgs/TransformStamped[] transforms
{_SEPARATOR}
MSG: geometry_msgs/TransformStamped
std_msgs/Header header
string child_frame_id
Transform transform
{_SEPARATOR}
MSG: geometry_msgs/Transform
Vector3 translation
Quaternion rotation
{_SEPARATOR}
MSG: geometry_msgs/Vector3
float64 x
float64 y
float64 z
{_QUATERNION_DEPS}"""
MSGDEFS = {IMAGE_TYPE: IMAGE_MSGDEF, COMPRESSED_TYPE: COMPRESSED_MSGDEF,
           DIAGNOSTIC_TYPE: DIAGNOSTIC_MSGDEF, OCCUPANCY_TYPE: OCCUPANCY_MSGDEF,
           CAMERA_INFO_TYPE: CAMERA_INFO_MSGDEF, TF_TYPE: TF_MSGDEF, SCAN_TYPE: SCAN_MSGDEF}
# DiagnosticStatus levels of a node's and a source's states (rtseg.status)
LEVELS = {"running": 0, "stopping": 0, "ok": 0, "reconnecting": 2, "ended": 3}


def ros_topic(topic: str) -> str:
    """``demo/drivable`` -> ``/demo/drivable``; characters ROS names do not allow become
    ``_`` (a name part starting with a digit gets a leading ``_``)."""
    parts = [re.sub(r"[^A-Za-z0-9_]", "_", part) for part in topic.strip("/").split("/")]
    return "/" + "/".join(f"_{p}" if p[:1].isdigit() else p for p in parts)


def ros_header(header: MaskHeader, frame_id: str | None = None) -> dict:
    """``std_msgs/Header``: the frame's capture stamp (sec, nanosec) and its frame_id (or
    `frame_id`: a grid's, a transform's parent)."""
    sec, nanosec = divmod(header.stamp_ns, 1_000_000_000)
    return {"stamp": {"sec": sec, "nanosec": nanosec},
            "frame_id": header.frame_id if frame_id is None else frame_id}


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


def grid_to_ros(header: MaskHeader, grid: GridSpec, occupancy: np.ndarray) -> dict:
    """A drivable mask's occupancy grid (rtseg.ground: ``(rows, cols) int8``, 0 free, 100
    occupied, -1 unknown) as ``nav_msgs/OccupancyGrid``: the frame's capture stamp, the
    grid's frame_id, its corner (x_min, y_min) as the origin."""
    head = ros_header(header, grid.frame_id)
    rows, cols = occupancy.shape
    origin = {"position": {"x": grid.x_min, "y": grid.y_min, "z": 0.0},
              "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}
    return {"header": head,
            "info": {"map_load_time": head["stamp"], "resolution": grid.resolution, "width": cols,
                     "height": rows, "origin": origin},
            "data": np.ascontiguousarray(occupancy, np.int8).ravel()}  # see `encoders`


def scan_to_ros(header: MaskHeader, grid: GridSpec, spec: ScanSpec,
                occupancy: np.ndarray) -> dict:
    """A grid (rows, cols) int8 of `grid` as ``sensor_msgs/LaserScan`` (rtseg.free_space:
    the beams of `spec`; +inf = free to range_max, nan = unseen) in the grid's frame, at the
    mask's stamp."""
    return {"header": ros_header(header, grid.frame_id),
            "angle_min": spec.angle_min, "angle_max": spec.angle_max,
            "angle_increment": spec.angle_increment, "time_increment": 0.0, "scan_time": 0.0,
            "range_min": 0.0, "range_max": spec.range_max,
            "ranges": scan_ranges(grid, occupancy, spec).tolist(), "intensities": []}


def camera_info_to_ros(header: MaskHeader, camera: Camera) -> dict:
    """``sensor_msgs/CameraInfo`` of the image (or mask) `header` describes: `camera`'s
    intrinsics scaled to its ``width`` x ``height``, its lens (plumb_bob, rational_polynomial
    for 8 coefficients, equidistant for a fisheye), the image's stamp and frame_id. Unrectified:
    R is the identity and P is K with a zero fourth column."""
    sx, sy = header.width / camera.width, header.height / camera.height
    fx, fy = camera.fx * sx, camera.fy * sy
    cx, cy = (camera.cx + 0.5) * sx - 0.5, (camera.cy + 0.5) * sy - 0.5
    d = list(camera.distortion)
    model = "rational_polynomial" if len(d) == 8 else "plumb_bob"
    if camera.lens == "fisheye":
        model, d = "equidistant", d + [0.0] * (4 - len(d))
    elif model == "plumb_bob":
        d = d + [0.0] * (5 - len(d))
    roi = {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}
    return {"header": ros_header(header), "height": header.height, "width": header.width,
            "distortion_model": model, "d": d,
            "k": [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
            "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            "p": [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
            "binning_x": 0, "binning_y": 0, "roi": roi}


def mount_to_ros(header: MaskHeader, camera: Camera, base_frame: str) -> dict:
    """``tf2_msgs/TFMessage``: where the camera (its optical frame, named by the image's
    frame_id: x right, y down, z ahead) sits in `base_frame`, at the image's stamp."""
    x, y, z, w = quaternion(camera.rotation())
    return {"transforms": [{
        "header": ros_header(header, base_frame),
        "child_frame_id": header.frame_id,
        "transform": {"translation": {"x": camera.x, "y": camera.y, "z": camera.z},
                      "rotation": {"x": x, "y": y, "z": z, "w": w}}}]}


def ground_messages(header: MaskHeader, data: np.ndarray, ground: GroundGrid,
                    fusion: GridFusion | None = None
                    ) -> list[tuple[str, str, Callable[[], dict]]]:
    """What a camera with a camera file adds beside a message of its (rtseg topic, ROS
    type, message): a drivable mask's ``NAME/grid`` and ``NAME/scan`` (its free space as
    a laser scan, rtseg.free_space), or with the file's [costs] a classes mask's (the
    grid of costs), and with `fusion` the cameras' grids fused (``grid``, and ``scan`` all
    round: rtseg.grid_fusion; the fusion takes this grid when the first of them is made);
    an image's ``NAME/camera_info`` (its calibration at the image's size) and ``tf`` (the
    camera's mount), which place the image in a 3D view. Messages are made when called (the
    grid once for all)."""
    camera = header.topic.rpartition("/")[0]
    if header.kind == ground.mask_kind:
        occupancy = cache(lambda: ground.grid_of(data, header.classes))
        messages = [(f"{camera}/grid", OCCUPANCY_TYPE,
                     lambda: grid_to_ros(header, ground.grid, occupancy())),
                    (f"{camera}/scan", SCAN_TYPE,
                     lambda: scan_to_ros(header, ground.grid, default_scan(ground),
                                         occupancy()))]
        if fusion is not None:
            fused = cache(lambda: fusion.update(camera, header.stamp_ns, occupancy()))
            messages += [(FUSED_TOPIC, OCCUPANCY_TYPE,
                          lambda: grid_to_ros(header, fusion.grid, fused())),
                         (FUSED_SCAN_TOPIC, SCAN_TYPE,
                          lambda: scan_to_ros(header, fusion.grid, fusion.scan, fused()))]
        return messages
    if header.kind == "image":
        return [(f"{camera}/camera_info", CAMERA_INFO_TYPE,
                 lambda: camera_info_to_ros(header, ground.camera)),
                ("tf", TF_TYPE, lambda: mount_to_ros(header, ground.camera, ground.grid.frame_id))]
    return []


def quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """A rotation matrix (3, 3) -> its unit quaternion (x, y, z, w), w >= 0."""
    m = np.asarray(rotation, np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4)
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        v = [0.0, 0.0, 0.0]
        v[i], v[j], v[k] = s / 4, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
        q = (*v, (m[k, j] - m[j, k]) / s)
    q = np.array(q) / np.linalg.norm(q)
    return tuple(float(c) for c in (q if q[3] >= 0 else -q))


def encoders() -> dict[str, Callable[[dict], bytes]]:
    """ROS 2 type -> the CDR encoder of its message dict: mcap_ros2's, made from `MSGDEFS`.

    An OccupancyGrid's ``int8[] data`` (an int8 array here) is written as raw bytes after
    its length: mcap_ros2 would write it one Python int at a time (~25 ms a 160 x 200 grid);
    it is the message's last field and int8 needs no alignment, so those bytes are exactly
    CDR's (rosbags reads them back in the tests)."""
    from mcap_ros2._dynamic import serialize_dynamic

    coders = {name: serialize_dynamic(name, text)[name] for name, text in MSGDEFS.items()}
    coders[OCCUPANCY_TYPE] = partial(_encode_grid, coders[OCCUPANCY_TYPE])
    return coders


def _encode_grid(encode: Callable[[dict], bytes], message: dict) -> bytes:
    data = np.ascontiguousarray(message["data"], np.int8).ravel()
    head = encode({**message, "data": []})  # ends with the empty array's uint32 length
    if head[-4:] != bytes(4):
        raise AssertionError("an OccupancyGrid's CDR must end with its data's length")
    order = "<" if head[1] == 1 else ">"  # encapsulation 00 01: little-endian CDR
    return head[:-4] + struct.pack(f"{order}I", data.size) + data.tobytes()
