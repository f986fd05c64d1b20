"""`rtseg foxglove`: a node's topics live in Foxglove, over the Foxglove WebSocket protocol.

A WebSocket server (foxglove-sdk, subprotocol ``foxglove.sdk.v1``, what the Foxglove app
and ``foxglove_bridge`` speak) that serves, per camera NAME, the same topics and ROS 2
types that `rtseg record` writes (rtseg.ros2msg), in CDR, so one Foxglove layout shows a
live node and its recordings alike:

- ``/NAME/drivable``, ``/NAME/classes``: ``sensor_msgs/msg/Image`` mono8;
- ``/NAME/image``: ``sensor_msgs/msg/CompressedImage`` jpeg (a node run with --image-topic);
- ``/NAME/overlay``: the classes in colour over the frame (what `rtseg view` draws), jpeg;
- ``/NAME/status``: ``diagnostic_msgs/msg/DiagnosticArray`` (the Diagnostics panel);
- ``/NAME/grid``: ``nav_msgs/msg/OccupancyGrid``, the drivable mask on the ground
  (rtseg.ground; for a camera given a camera file with --camera), for the 3D panel, and
  ``/NAME/scan`` (``sensor_msgs/msg/LaserScan``, its free space, rtseg.free_space), and
  with each of its images ``/NAME/camera_info`` (``sensor_msgs/msg/CameraInfo``) and
  ``/tf`` (its mount, ``tf2_msgs/msg/TFMessage``), which place the camera in 3D;
- ``/NAME/timing``: JSON per frame (seq, the node's stage times ``latency_ms``, and
  ``age_ms``, capture -> received here), for the Plot panel (bridge only: not recorded).

Every topic is advertised from the start (an image topic too, though a node run without
--image-topic never fills it), and a message is converted only while a client subscribes
to its channel: an idle bridge costs the receive alone. Loopback unless --allow-remote.
No torch here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rtseg.camera_file import load_grounds
from rtseg.client import MaskSubscriber
from rtseg.compose import (
    Compositor,
    FrameParts,
    draw_or_skip,
    overlay_message,
    receive_frames,
)
from rtseg.errors import RtsegError
from rtseg.grid_fusion import FUSED_SCAN_TOPIC, FUSED_TOPIC, GridFusion
from rtseg.httpbind import check_bind, host_url, port_in_use
from rtseg.protocol import MaskHeader, NodeStatus
from rtseg.ros2msg import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    DIAGNOSTIC_TYPE,
    IMAGE_TYPE,
    MSGDEFS,
    OCCUPANCY_TYPE,
    SCAN_TYPE,
    TF_TYPE,
    encoders,
    ground_messages,
    ros_topic,
    status_to_ros,
    to_ros,
)
from rtseg.signals import wait_for_stop

log = logging.getLogger("rtseg.foxglove")
SUBPROTOCOL = "foxglove.sdk.v1"
KINDS = ("drivable", "classes", "image", "status")
INSTALL_HINT = "pip install 'rtseg[foxglove]' (the foxglove-sdk package)"
TIMING_TYPE = "rtseg.Timing"  # /NAME/timing: a frame's stage times, for the Plot panel
TIMING_SCHEMA = {
    "title": TIMING_TYPE, "type": "object",
    "properties": {
        "seq": {"type": "integer", "description": "the frame's seq"},
        "age_ms": {"type": "number", "description": "capture -> received by the bridge"},
        "latency_ms": {"type": "object", "additionalProperties": {"type": "number"},
                       "description": "the node's stage times; total = capture -> publish"},
    },
}


@dataclass(frozen=True)
class FoxgloveConfig:
    """`rtseg foxglove`: the node's `endpoint` and camera `names`, where the WebSocket
    server listens (`bind`, `port`; 0 = a free port), and whether to serve `/NAME/overlay`
    (JPEG at `jpeg_quality`)."""

    endpoint: str
    names: tuple[str, ...] = ("demo",)
    port: int = 8765
    bind: str = "127.0.0.1"
    allow_remote: bool = False
    overlay: bool = True
    jpeg_quality: int = 85
    curve_server_key: str | None = None  # a node run with --curve-secret
    curve_secret: str | None = None  # this client's key pair, for a node listing clients
    cameras: tuple[str, ...] = ()  # --camera [NAME=]FILE: serve /NAME/grid (rtseg.ground)
    fuse: bool = False  # also /grid and /scan: the cameras' grids fused (rtseg.grid_fusion)


class RosChannels:
    """One foxglove Channel per topic, all created (advertised) at once: ROS 2 types as
    ``cdr`` messages of a ``ros2msg`` schema (rtseg.ros2msg.encoders), `TIMING_TYPE` as
    ``json`` of `TIMING_SCHEMA`.

    All at once, before any client can connect: foxglove-sdk 0.30 can advertise a channel
    created while a client is connected before that client's session knows it, so a client
    that subscribes at once is told "Unknown channel ID" and never gets its messages (seen
    here in 3 of 30 tries on a loaded machine)."""

    def __init__(self, context, types: dict[str, str]) -> None:
        """`types`: ROS topic -> ROS 2 type, for every topic the bridge may send."""
        import foxglove

        self._encoders = encoders()
        self._encoders[TIMING_TYPE] = lambda message: json.dumps(message).encode()
        self._types = types
        self._channels = {}
        for topic, type_name in types.items():
            if type_name == TIMING_TYPE:
                schema = foxglove.Schema(name=TIMING_TYPE, encoding="jsonschema",
                                         data=json.dumps(TIMING_SCHEMA).encode())
            else:
                schema = foxglove.Schema(name=type_name, encoding="ros2msg",
                                         data=MSGDEFS[type_name].encode())
            self._channels[topic] = foxglove.Channel(
                topic, schema=schema, context=context,
                message_encoding="json" if type_name == TIMING_TYPE else "cdr")
        self.sent: dict[str, int] = {}  # messages sent to clients, per topic

    def wanted(self, topic: str) -> bool:
        """Whether a client subscribes to `topic` now."""
        channel = self._channels.get(topic)
        return channel is not None and channel.has_sinks()

    def send(self, topic: str, message: Callable[[], dict], log_time_ns: int) -> None:
        """Encode `message()` (a ROS message dict) and send it, if `topic` is wanted."""
        if self.wanted(topic):
            encode = self._encoders[self._types[topic]]
            self._channels[topic].log(encode(message()), log_time=log_time_ns)
            self.sent[topic] = self.sent.get(topic, 0) + 1

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


def bridge_topics(names: tuple[str, ...], overlay: bool,
                  grids: tuple[str, ...] = (), fused: bool = False) -> dict[str, str]:
    """ROS topic -> ROS 2 type of every topic served for cameras `names` (and, for the
    names in `grids`, `/NAME/grid`, `/NAME/scan`, `/NAME/camera_info` and `/tf`; `fused`:
    `/grid` and `/scan`)."""
    types = {"drivable": IMAGE_TYPE, "classes": IMAGE_TYPE, "image": COMPRESSED_TYPE,
             "status": DIAGNOSTIC_TYPE, "timing": TIMING_TYPE} | (
                 {"overlay": COMPRESSED_TYPE} if overlay else {})
    topics = {ros_topic(f"{name}/{kind}"): ros_type for name in names
              for kind, ros_type in types.items()}
    for name in grids:
        topics |= {ros_topic(f"{name}/grid"): OCCUPANCY_TYPE, ros_topic(f"{name}/scan"): SCAN_TYPE,
                   ros_topic(f"{name}/camera_info"): CAMERA_INFO_TYPE, "/tf": TF_TYPE}
    if fused:
        topics |= {ros_topic(FUSED_TOPIC): OCCUPANCY_TYPE, ros_topic(FUSED_SCAN_TOPIC): SCAN_TYPE}
    return topics


def start_server(cfg: FoxgloveConfig, host: str, context):
    """foxglove-sdk's WebSocket server on `host` (checked by rtseg.httpbind.check_bind):
    `cfg.port`, or a one-line RtsegError (a busy port, an address this machine lacks)."""
    import foxglove

    try:
        return foxglove.start_server(name="rtseg", host=host, port=cfg.port, context=context)
    except RuntimeError as exc:
        if "in use" in str(exc):
            raise port_in_use(cfg.port, host) from None
        raise RtsegError(f"cannot serve Foxglove on {host}:{cfg.port}: {exc}; use an address "
                         "of this machine, e.g. --bind 127.0.0.1") from None


class FoxgloveBridge:
    """The WebSocket server and the subscriber thread of `rtseg foxglove`; a context
    manager. `url` is the address to open in Foxglove (ws://HOST:PORT)."""

    def __init__(self, cfg: FoxgloveConfig) -> None:
        if not cfg.names:
            raise RtsegError("rtseg foxglove needs at least one camera NAME, e.g. demo")
        try:
            import foxglove
        except ImportError:
            raise RtsegError(f"rtseg foxglove needs foxglove-sdk: {INSTALL_HINT}") from None
        host = check_bind(cfg.bind, cfg.port, allow_remote=cfg.allow_remote)
        self.cfg = cfg
        self._stop = threading.Event()
        self._grounds = load_grounds(cfg.cameras, cfg.names)
        self._fusion = GridFusion(self._grounds) if cfg.fuse else None
        self._context = foxglove.Context()  # kept: the SDK forgets the channels of a freed one
        self.channels = RosChannels(self._context, bridge_topics(
            cfg.names, cfg.overlay, tuple(self._grounds), self._fusion is not None))
        try:  # the channels exist before the server does: no client sees one appear
            self._server = start_server(cfg, host, self._context)
        except BaseException:
            self.channels.close()
            raise
        self.url = host_url("ws", host, self._server.port)
        try:
            topics = [f"{n}/{kind}" for n in cfg.names for kind in KINDS]
            self._sub = MaskSubscriber(cfg.endpoint, topics, timeout_ms=200,
                                       on_status=self._on_status,
                                       curve_server_key=cfg.curve_server_key,
                                       curve_secret=cfg.curve_secret)
        except BaseException:
            self._server.stop()
            self.channels.close()
            raise
        self._thread = threading.Thread(target=self._receive, daemon=True,
                                        name="rtseg-foxglove-sub")
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.port

    def _on_status(self, status: NodeStatus) -> None:
        self.channels.send(ros_topic(status.topic), lambda: status_to_ros(status),
                           status.stamp_ns)

    def _send(self, header: MaskHeader, data: np.ndarray) -> None:
        """A mask or image as its ROS 2 message; its log time is its capture time, so
        Foxglove lines the topics of one frame up."""
        self.channels.send(ros_topic(header.topic), lambda: to_ros(header, data),
                           header.stamp_ns)

    def _forward(self, header: MaskHeader, data: np.ndarray) -> None:
        """One wire message: itself, what its camera file adds (rtseg.ros2msg's
        ground_messages) and, per frame, its stage times."""
        self._send(header, data)
        camera = header.topic.rpartition("/")[0]
        if camera in self._grounds:
            for topic, _, message in ground_messages(header, data, self._grounds[camera],
                                                     self._fusion):
                self.channels.send(ros_topic(topic), message, header.stamp_ns)
        if header.kind == "classes":  # one per frame
            age_ms = (time.time_ns() - header.stamp_ns) / 1e6
            self.channels.send(ros_topic(f"{camera}/timing"),
                               lambda: {"seq": header.seq, "age_ms": round(age_ms, 3),
                                        "latency_ms": dict(header.latency_ms)},
                               header.stamp_ns)

    def _overlay(self, camera: str, parts: FrameParts) -> None:
        topic = ros_topic(f"{camera}/overlay")
        if not self.channels.wanted(topic):
            return
        composite = draw_or_skip(camera, parts)
        if composite is not None:
            header, jpeg = overlay_message(camera, parts, composite, self.cfg.jpeg_quality)
            self._send(header, jpeg)

    def _receive(self) -> None:
        kinds = ("classes", "drivable", "image")
        compositors = {n: Compositor(kinds) for n in self.cfg.names} if self.cfg.overlay else {}
        try:
            receive_frames(self._sub, compositors, self._stop.is_set, self._overlay,
                           on_message=self._forward)
        except Exception:
            log.exception("the Foxglove bridge's subscriber failed: no new messages will go out")

    def close(self) -> None:
        """Stop the subscriber thread, the channels and the server. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._sub.close()
        self.channels.close()
        self._server.stop()

    def __enter__(self) -> FoxgloveBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_foxglove(cfg: FoxgloveConfig, stop: threading.Event | None = None,
                 on_ready: Callable[[str], None] | None = None) -> dict[str, int]:
    """Serve until `stop` is set or a SIGINT/SIGTERM (StopRequested, whose detail then
    counts what went out); returns the messages sent per topic. `on_ready(url)` once
    listening."""
    stop = stop or threading.Event()
    with FoxgloveBridge(cfg) as bridge:
        log.info("Foxglove bridge of %s on %s at %s (open it in Foxglove: Open connection, "
                 "Foxglove WebSocket; Ctrl-C stops it)", ", ".join(cfg.names), cfg.endpoint,
                 bridge.url)
        if on_ready is not None:
            on_ready(bridge.url)
        wait_for_stop(stop, lambda: f"after {sum(bridge.channels.sent.values())} messages sent")
        return dict(bridge.channels.sent)
