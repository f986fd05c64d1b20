"""`rtseg foxglove`: real publishers and nodes, the real bridge, and a real WebSocket client
speaking the Foxglove protocol; the CDR it receives is read back with rosbags (an
independent ROS 2 message reader)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import REPO
from foxglove_client import FoxgloveClient
from live_node import demo_node  # noqa: I001  (tests/ is on sys.path)

from rtseg.camera_file import load_ground
from rtseg.compose import FrameParts, draw, overlay_message
from rtseg.data import synthetic
from rtseg.errors import RtsegError
from rtseg.free_space import default_scan, scan_ranges
from rtseg.protocol import decode, encode
from rtseg.ros2msg import CAMERA_INFO_TYPE, MSGDEFS, OCCUPANCY_TYPE, SCAN_TYPE, TF_TYPE
from rtseg.stream.publisher import FrameMeta, MaskPublisher

pytest.importorskip("foxglove")
from rtseg.foxglove_bridge import FoxgloveBridge, FoxgloveConfig  # noqa: E402

CLASS_NAMES = synthetic.CLASSES
DEMO_CAMERA = REPO / "launch" / "cameras" / "demo.toml"
TYPES = {"drivable": "sensor_msgs/msg/Image", "classes": "sensor_msgs/msg/Image",
         "image": "sensor_msgs/msg/CompressedImage",
         "overlay": "sensor_msgs/msg/CompressedImage",
         "status": "diagnostic_msgs/msg/DiagnosticArray"}


def node_publisher() -> MaskPublisher:
    """A PUB socket on a free loopback port queueing 4 frames of 4 messages (image, two
    masks, status) per subscriber, as a node does (its --hwm counts frames)."""
    return MaskPublisher("tcp://127.0.0.1:*", hwm=16)


def read_ros(payload: bytes, ros_type: str):
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY).deserialize_cdr(payload, ros_type)


class Scenes:
    """Publishes generated scenes as a node would (image, drivable, classes, and a status
    every 5th frame) and keeps what it sent per capture stamp."""

    def __init__(self, publisher: MaskPublisher, name: str = "scenes") -> None:
        self.publisher, self.name = publisher, name
        self.sent: dict[int, FrameParts] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng, seq = np.random.default_rng(5), 0
        lut = np.zeros(256, np.uint8)
        lut[[CLASS_NAMES.index(n) for n in synthetic.DRIVABLE]] = 1
        while not self.stop.is_set():
            image, label = synthetic.render_scene(rng, 90, 160)
            jpeg = cv2.imencode(".jpg", image)[1].reshape(-1)
            stamp = time.time_ns()
            meta = FrameMeta(seq=seq, stamp_ns=stamp, frame_id=self.name, model="labels")
            parts = FrameParts(seq, stamp, jpeg=jpeg)
            for kind, mask, names in (("drivable", lut[label], ["not_drivable", "drivable"]),
                                      ("classes", label, CLASS_NAMES)):
                frame = encode(f"{self.name}/{kind}", kind, mask, seq=seq, stamp_ns=stamp,
                               frame_id=self.name, classes=names, model="labels")
                parts.masks[kind] = decode(frame)
            self.sent[stamp] = parts
            self.publisher.publish_image(self.name, jpeg.tobytes(), 160, 90, meta)
            self.publisher.publish_frame(self.name, lut[label], label, meta,
                                         class_names=CLASS_NAMES)
            if seq % 5 == 0:
                self.publisher.publish_status(self.name, "running", [])
            seq += 1
            self.stop.wait(0.05)

    def __enter__(self) -> Scenes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_topics_types_and_messages_are_those_of_the_wire():
    """Every topic arrives as the ROS 2 message of `rtseg record`, its data the very
    mask / JPEG published (matched by capture stamp), the overlay the viewer's drawing."""
    with node_publisher() as publisher, Scenes(publisher) as scenes, \
            FoxgloveBridge(FoxgloveConfig(publisher.endpoint, ("scenes",), port=0)) as bridge:
        with FoxgloveClient(bridge.url) as client:
            topics = [f"/scenes/{kind}" for kind in (*TYPES, "timing")]
            client.subscribe(topics)
            got = client.collect({t: 3 for t in topics})
    assert client.info["name"] == "rtseg"
    timing = client.channels["/scenes/timing"]
    assert (timing["encoding"], timing["schemaEncoding"]) == ("json", "jsonschema")
    for log_time, payload in got["/scenes/timing"]:  # one per frame, for the Plot panel
        frame = json.loads(payload)
        assert frame["seq"] == scenes.sent[log_time].seq
        assert frame["age_ms"] >= frame["latency_ms"]["total"] - 1.0 >= -1.0
    for kind, ros_type in TYPES.items():
        channel = client.channels[f"/scenes/{kind}"]
        assert (channel["encoding"], channel["schemaEncoding"]) == ("cdr", "ros2msg")
        assert (channel["schemaName"], channel["schema"]) == (ros_type, MSGDEFS[ros_type])
    for kind in ("drivable", "classes", "image", "overlay"):
        for log_time, payload in got[f"/scenes/{kind}"]:
            msg = read_ros(payload, TYPES[kind])
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            assert log_time == stamp and msg.header.frame_id == "scenes"
            parts = scenes.sent[stamp]
            if kind == "image":
                assert msg.format == "jpeg" and bytes(msg.data) == parts.jpeg.tobytes()
            elif kind == "overlay":
                _, jpeg = overlay_message("scenes", parts, draw(parts), 85)
                assert bytes(msg.data) == jpeg.tobytes()
                assert cv2.imdecode(msg.data, cv2.IMREAD_COLOR).shape == (90, 160, 3)
            else:
                mask = parts.masks[kind][1]
                assert (msg.height, msg.width, msg.step, msg.encoding) == (90, 160, 160, "mono8")
                np.testing.assert_array_equal(msg.data.reshape(90, 160), mask)
    status = read_ros(got["/scenes/status"][0][1], TYPES["status"])
    assert [s.name for s in status.status] == ["rtseg/scenes"]
    assert status.status[0].message == "running"


def test_only_subscribed_topics_are_converted_and_sent():
    with node_publisher() as publisher, Scenes(publisher), \
            FoxgloveBridge(FoxgloveConfig(publisher.endpoint, ("scenes",), port=0)) as bridge:
        with FoxgloveClient(bridge.url) as client:
            client.subscribe(["/scenes/drivable"])
            got = client.collect({"/scenes/drivable": 4})
            sent = dict(bridge.channels.sent)
            # the others are advertised (subscribe waits for that), yet none was sent
            client.subscribe(["/scenes/overlay", "/scenes/image", "/scenes/classes"])
    assert len(got["/scenes/drivable"]) == 4
    assert set(sent) == {"/scenes/drivable"}, sent


def test_without_the_overlay_nothing_is_drawn_or_advertised():
    config = FoxgloveConfig("", ("scenes",), port=0, overlay=False)
    with node_publisher() as publisher, Scenes(publisher), \
            FoxgloveBridge(replace(config, endpoint=publisher.endpoint)) as bridge, \
            FoxgloveClient(bridge.url) as client:
        client.subscribe(["/scenes/classes", "/scenes/image"])
        client.collect({"/scenes/classes": 3, "/scenes/image": 3})
    assert "/scenes/overlay" not in client.channels and "/scenes/classes" in client.channels


def test_a_live_demo_node_in_foxglove():
    """The real node (bundled model, image topic): its frame's image, masks and overlay
    come with one capture stamp, at the image's size."""
    with demo_node(image_topic=True) as endpoint, \
            FoxgloveBridge(FoxgloveConfig(endpoint, ("demo",), port=0)) as bridge:
        with FoxgloveClient(bridge.url) as client:
            client.subscribe(["/demo/classes", "/demo/overlay", "/demo/image"])
            got = client.collect({"/demo/classes": 3, "/demo/overlay": 2, "/demo/image": 2})
    shapes = set()
    for kind in ("image", "overlay"):
        for log_time, payload in got[f"/demo/{kind}"]:
            msg = read_ros(payload, TYPES[kind])
            assert log_time == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            shapes.add(cv2.imdecode(msg.data, cv2.IMREAD_COLOR).shape)
    assert len(shapes) == 1, shapes  # the overlay is drawn over the frame, at its size
    for _, payload in got["/demo/classes"]:
        msg = read_ros(payload, TYPES["classes"])
        assert msg.encoding == "mono8" and msg.data.max() < len(CLASS_NAMES)
        assert msg.data.size == msg.height * msg.width


def test_the_grid_is_the_drivable_mask_on_the_ground():
    """With a camera file, /NAME/grid is each published drivable mask through
    rtseg.ground, as a nav_msgs/OccupancyGrid with the frame's stamp and the grid's
    frame and corner."""
    camera = str(DEMO_CAMERA)
    ground = load_ground(camera)
    cfg = FoxgloveConfig("", ("scenes",), port=0, cameras=(camera,))
    with node_publisher() as publisher, Scenes(publisher) as scenes, \
            FoxgloveBridge(replace(cfg, endpoint=publisher.endpoint)) as bridge, \
            FoxgloveClient(bridge.url) as client:
        client.subscribe(["/scenes/grid", "/scenes/scan", "/scenes/camera_info", "/tf"])
        got = client.collect({"/scenes/grid": 3, "/scenes/scan": 3, "/scenes/camera_info": 2,
                              "/tf": 2})
    channel = client.channels["/scenes/grid"]
    assert (channel["schemaName"], channel["schema"]) == (OCCUPANCY_TYPE, MSGDEFS[OCCUPANCY_TYPE])
    values = set()
    for log_time, payload in got["/scenes/grid"]:
        msg = read_ros(payload, OCCUPANCY_TYPE)
        assert log_time == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        assert msg.header.frame_id == "base_link" and msg.info.resolution == pytest.approx(0.2)
        assert (msg.info.height, msg.info.width) == ground.grid.shape == (160, 200)
        origin = msg.info.origin
        assert (origin.position.x, origin.position.y, origin.orientation.w) == (6.0, -16.0, 1.0)
        drivable = scenes.sent[log_time].masks["drivable"][1]
        grid = msg.data.reshape(ground.grid.shape)
        np.testing.assert_array_equal(grid, ground.occupancy(drivable))
        values |= set(np.unique(grid).tolist())
    assert values == {-1, 0, 100}
    spec = default_scan(ground)
    for log_time, payload in got["/scenes/scan"]:  # the free space of that very grid
        scan = read_ros(payload, SCAN_TYPE)
        assert scan.header.frame_id == "base_link" and scan.range_max == pytest.approx(
            spec.range_max) and scan.angle_min == pytest.approx(spec.angle_min)
        want = scan_ranges(ground.grid, ground.occupancy(scenes.sent[log_time].masks[
            "drivable"][1]), spec)
        np.testing.assert_array_equal(scan.ranges, want)
    cam, scale = ground.camera, 160 / 640  # the images are 160x90, the camera file 640x360
    for (log_time, info), (tf_time, tf) in zip(got["/scenes/camera_info"], got["/tf"]):
        info, tf = read_ros(info, CAMERA_INFO_TYPE), read_ros(tf, TF_TYPE).transforms[0]
        assert log_time == tf_time and scenes.sent[log_time].jpeg is not None
        assert (info.header.frame_id, info.width, info.height) == ("scenes", 160, 90)
        assert info.k == pytest.approx([cam.fx * scale, 0, (cam.cx + 0.5) * scale - 0.5, 0,
                                        cam.fy * scale, (cam.cy + 0.5) * scale - 0.5, 0, 0, 1])
        assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
        assert (tf.header.frame_id, tf.child_frame_id) == ("base_link", "scenes")
        assert (tf.transform.translation.z, tf.transform.rotation.w) == (cam.z, 0.5)


def test_bad_settings_are_one_line_errors_naming_the_fix(monkeypatch):
    with pytest.raises(RtsegError, match="not a loopback address.*--allow-remote"):
        FoxgloveBridge(FoxgloveConfig("tcp://127.0.0.1:5555", bind="0.0.0.0", port=0))
    with pytest.raises(RtsegError, match="outside 0..65535"):
        FoxgloveBridge(FoxgloveConfig("tcp://127.0.0.1:5555", port=70000))
    with pytest.raises(RtsegError, match="at least one camera NAME"):
        FoxgloveBridge(FoxgloveConfig("tcp://127.0.0.1:5555", names=()))
    with pytest.raises(RtsegError, match="--camera back=.*back is not one of the cameras here "
                       r"\(demo\)"):
        FoxgloveBridge(FoxgloveConfig("tcp://127.0.0.1:5555", port=0,
                                      cameras=(f"back={DEMO_CAMERA}",)))
    monkeypatch.setitem(sys.modules, "foxglove", None)  # as if foxglove-sdk were absent
    with pytest.raises(RtsegError, match=r"needs foxglove-sdk: pip install 'rtseg\[foxglove\]'"):
        FoxgloveBridge(FoxgloveConfig("tcp://127.0.0.1:5555", port=0))


def test_the_command_serves_until_a_signal_and_exits_0():
    with node_publisher() as publisher, Scenes(publisher):
        proc = subprocess.Popen([sys.executable, "-m", "rtseg", "-v", "foxglove",
                                 publisher.endpoint, "scenes", "--port", "0", "--camera",
                                 str(DEMO_CAMERA)],
                                stderr=subprocess.PIPE, text=True)
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True)
        reader.start()
        seen: list[str] = []
        try:
            while not any(" at ws://" in line for line in seen):
                seen.append(lines.get(timeout=60))
            url = next(x for x in seen if " at ws://" in x).split(" at ", 1)[1].split()[0]
            try:
                with FoxgloveClient(url) as client:
                    client.subscribe(["/scenes/classes", "/scenes/grid"])
                    got = client.collect({"/scenes/classes": 2, "/scenes/grid": 2})
            except (AssertionError, TimeoutError) as exc:
                raise AssertionError(f"{exc}; the bridge said:\n{drain(lines)}") from None
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
            reader.join(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    rest = drain(lines)
    assert len(got["/scenes/classes"]) == len(got["/scenes/grid"]) == 2  # --camera: grids
    assert "rtseg foxglove: stopped by SIGINT after" in rest and "messages sent" in rest, rest


def drain(lines: queue.Queue) -> str:
    out = []
    while not lines.empty():
        out.append(lines.get())
    return "".join(out)


def test_fuse_advertises_the_fused_grid_and_needs_two_cameras():
    """--fuse: /grid is advertised beside each camera's /NAME/grid (the grids it fuses are
    those of rtseg.ros2msg.ground_messages, as `rtseg record --fuse` writes them:
    test_grid_fusion); with one camera file it is a one-line error before serving."""
    from rtseg.foxglove_bridge import bridge_topics

    topics = bridge_topics(("front", "rear"), True, ("front", "rear"), fused=True)
    assert topics["/grid"] == topics["/front/grid"] == OCCUPANCY_TYPE
    assert topics["/scan"] == topics["/front/scan"] == SCAN_TYPE
    assert not {"/grid", "/scan"} & set(bridge_topics(("front", "rear"), True, ("front", "rear")))
    with pytest.raises(RtsegError, match="--fuse fuses the grids of several cameras"):
        FoxgloveBridge(FoxgloveConfig("tcp://127.0.0.1:5555", ("demo",), port=0,
                                      cameras=(str(DEMO_CAMERA),), fuse=True))
