"""`rtseg record`: a real node's messages into MCAP, read back with the mcap library and
compared with what a parallel subscriber received."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO
from live_node import demo_node  # noqa: I001  (tests/ is on sys.path)
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from rtseg.bag_info import recording_info
from rtseg.camera_file import load_ground
from rtseg.client import MaskSubscriber
from rtseg.compose import FrameParts, draw
from rtseg.errors import RtsegError
from rtseg.free_space import default_scan, scan_ranges
from rtseg.protocol import MaskHeader
from rtseg.record import RecordConfig, check_config, record
from rtseg.rosbag2 import listed_files

TOPICS = ("demo/drivable", "demo/classes", "demo/image")
DEADLINE_S = 90.0


@pytest.fixture(scope="module")
def node():
    with demo_node(image_topic=True) as endpoint:
        yield endpoint


class Collector:
    """A parallel subscriber on its own thread: every message by (topic, seq)."""

    def __init__(self, endpoint: str) -> None:
        self.got: dict[tuple[str, int], tuple] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sub = MaskSubscriber(endpoint, TOPICS, timeout_ms=200)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                header, data = self._sub.recv()
            except TimeoutError:
                continue
            with self._cond:
                self.got[(header.topic, header.seq)] = (header, data)
                self._cond.notify_all()

    def wait_for(self, condition, what: str) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: condition(self.got), DEADLINE_S), what

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sub.close()


def read_back(path: Path) -> list[tuple]:
    """(schema, channel, message, decoded ROS 2 message) of every message in the file."""
    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        return list(reader.iter_decoded_messages())


def assert_same(ros, header, data) -> None:
    """A recorded ROS 2 message holds exactly what the subscriber decoded."""
    assert ros.header.stamp.sec * 10**9 + ros.header.stamp.nanosec == header.stamp_ns
    assert ros.header.frame_id == header.frame_id == "demo"
    if header.kind == "image":
        assert ros.format == "jpeg" and bytes(ros.data) == data.tobytes()
        return
    assert (ros.height, ros.width, ros.step) == (*data.shape, data.shape[1])
    assert ros.encoding == "mono8" and ros.is_bigendian == 0
    assert bytes(ros.data) == data.tobytes()


def test_every_recorded_message_is_what_a_subscriber_received(node, tmp_path):
    collector = Collector(node)
    try:
        collector.wait_for(bool, "the parallel subscriber to receive a first message")
        out = tmp_path / "run.mcap"
        report = record(RecordConfig(endpoint=node, topics=TOPICS, out=str(out), count=15,
                                     timeout_s=DEADLINE_S))
        assert report.messages == 15 and report.stopped_by is None
        messages = read_back(out)
        keys = [(ch.topic.lstrip("/"), msg.sequence) for _, ch, msg, _ in messages]
        collector.wait_for(lambda got: all(k in got for k in keys),
                           "the parallel subscriber to receive every recorded message")
    finally:
        collector.close()
    assert len(messages) == 15 and {topic for topic, _ in keys} == set(TOPICS)
    for (schema, channel, _, ros), key in zip(messages, keys):
        header, data = collector.got[key]
        want = "sensor_msgs/msg/CompressedImage" if header.kind == "image" else (
            "sensor_msgs/msg/Image")
        assert schema.name == want and schema.encoding == "ros2msg"
        assert channel.message_encoding == "cdr" and channel.topic == "/" + header.topic
        assert_same(ros, header, data)


def test_overlays_are_the_drawn_frames_and_a_recording_replays_as_a_source(node, tmp_path):
    """`--overlay` writes /demo/overlay: the viewer's drawing of each frame's recorded
    image and masks, as JPEG. `rtseg run --source run.mcap[#/demo/image]` gets the
    recorded frames back, in order (masks and overlays are not taken for cameras)."""
    from rtseg.stream.sources import SourceSpec, open_source

    out = tmp_path / "run.mcap"
    report = record(RecordConfig(endpoint=node, topics=TOPICS, out=str(out), count=24,
                                 timeout_s=DEADLINE_S, overlay=True))
    messages = read_back(out)
    assert report.messages == len(messages) == 24 + report.counts["demo/overlay"]
    by_stamp: dict[int, dict] = {}
    for _, channel, _, ros in messages:
        kind = channel.topic.rpartition("/")[2]
        by_stamp.setdefault(stamp_ns(ros), {})[kind] = ros
    names = {"classes": tuple(json.loads(rtseg_metadata(out)["classes /demo/classes"])),
             "drivable": ("not_drivable", "drivable")}
    overlays = [(s, parts) for s, parts in by_stamp.items() if "overlay" in parts]
    assert overlays and all({"image", "classes", "drivable"} <= set(p) for _, p in overlays)
    for stamp, parts in overlays:
        got = cv2.imdecode(np.frombuffer(bytes(parts["overlay"].data), np.uint8), 1)
        image = np.frombuffer(bytes(parts["image"].data), np.uint8)
        masks = {k: (header_of(k, stamp, names[k]), np.frombuffer(bytes(parts[k].data), np.uint8)
                     .reshape(parts[k].height, parts[k].width)) for k in ("classes", "drivable")}
        want = draw(FrameParts(0, stamp, masks, image)).bgr
        plain = cv2.imdecode(image, 1).astype(int)
        assert got.shape == want.shape == (360, 640, 3)
        assert np.abs(got.astype(int) - want).mean() < 8  # JPEG at quality 85: ~2.4
        assert np.abs(want.astype(int) - plain).mean() > 10  # coloured, not the bare frame
    jpegs = [bytes(ros.data) for _, ch, _, ros in messages if ch.topic == "/demo/image"]
    assert jpegs
    for spec in (f"{out}#/demo/image", str(out)):  # masks, overlays: no camera
        with open_source(SourceSpec(spec=spec)) as source:
            assert source.name == "demo" and source.frame_id == f"{out}#/demo/image"
            frames = [source.read(timeout=5.0) for _ in jpegs]
            assert source.read(timeout=5.0) is None and source.exhausted
    for got, jpeg in zip(frames, jpegs):
        want = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert got is not None and np.array_equal(got.image, want)


def test_grids_are_the_recorded_drivable_masks_on_the_ground(node, tmp_path):
    """`--camera FILE`: each drivable mask also as /demo/grid, a nav_msgs/OccupancyGrid
    with the mask's stamp and seq: rtseg.ground's grid of that very mask; each image with
    /demo/camera_info (at the image's size) and /tf (the camera's mount)."""
    camera = str(REPO / "launch" / "cameras" / "demo.toml")
    out = tmp_path / "grid.mcap"
    report = record(RecordConfig(endpoint=node, topics=("demo/drivable", "demo/image"),
                                 out=str(out), count=10, timeout_s=DEADLINE_S,
                                 cameras=(camera,)))
    images, masks = report.counts["demo/image"], report.counts["demo/drivable"]
    assert images + masks == 10 and images >= 1 and masks >= 1
    assert report.counts == {"demo/drivable": masks, "demo/grid": masks, "demo/scan": masks,
                             "demo/image": images, "demo/camera_info": images, "tf": images}
    messages = read_back(out)
    by_topic: dict[str, list] = {}
    for schema, ch, msg, ros in messages:
        by_topic.setdefault(ch.topic, []).append((schema, msg, ros))
    ground = load_ground(camera)
    for schema, msg, grid in by_topic["/demo/grid"]:
        mask = next(ros for _, m, ros in by_topic["/demo/drivable"] if m.sequence == msg.sequence)
        assert schema.name == "nav_msgs/msg/OccupancyGrid" and schema.encoding == "ros2msg"
        assert stamp_ns(grid) == stamp_ns(mask) and grid.header.frame_id == "base_link"
        assert (grid.info.height, grid.info.width) == ground.grid.shape
        want = ground.occupancy(np.frombuffer(bytes(mask.data), np.uint8).reshape(
            mask.height, mask.width))
        assert np.array_equal(np.asarray(grid.data, np.int8).reshape(ground.grid.shape), want)
        assert (want == 0).any() and (want == 100).any()  # the demo's road and its sides
        scan = next(ros for _, m, ros in by_topic["/demo/scan"] if m.sequence == msg.sequence)
        assert stamp_ns(scan) == stamp_ns(mask) and scan.header.frame_id == "base_link"
        np.testing.assert_array_equal(np.asarray(scan.ranges, np.float32), scan_ranges(
            ground.grid, want, default_scan(ground)))
    for (_, _, image), (_, _, info), (_, _, tf) in zip(
            by_topic["/demo/image"], by_topic["/demo/camera_info"], by_topic["/tf"]):
        assert stamp_ns(info) == stamp_ns(image) == stamp_ns(tf.transforms[0])
        assert (info.width, info.height) == (640, 360)  # the demo's frames, full size
        assert list(info.k) == pytest.approx([586.5, 0, 398.9, 0, 586.5, 184.2, 0, 0, 1])
        assert tf.transforms[0].child_frame_id == info.header.frame_id == "demo"
    topics = {t["topic"]: t for t in recording_info(str(out))["topics"]}
    assert topics["/demo/grid"]["type"] == "nav_msgs/msg/OccupancyGrid"
    assert topics["/tf"]["type"] == "tf2_msgs/msg/TFMessage"


def test_a_camera_file_with_costs_grids_the_classes(node, tmp_path):
    """[costs]: the grid is made from each classes mask, a cost per class; a recording
    without NAME/classes is refused before anything opens."""
    camera = tmp_path / "costs.toml"
    camera.write_text((REPO / "launch" / "cameras" / "demo.toml").read_text()
                      + "\n[costs]\nroad = 0\nlane_marking = 0\nsidewalk = 40\n")
    with pytest.raises(RtsegError, match="its grid is made from demo/classes; record that"):
        record(RecordConfig(endpoint=node, topics=("demo/drivable",), out=str(tmp_path / "x.mcap"),
                            count=1, cameras=(str(camera),)))
    assert not (tmp_path / "x.mcap").exists()
    out = tmp_path / "costs.mcap"
    report = record(RecordConfig(endpoint=node, topics=("demo/classes",), out=str(out), count=3,
                                 timeout_s=DEADLINE_S, cameras=(str(camera),)))
    assert report.counts == {"demo/classes": 3, "demo/grid": 3, "demo/scan": 3}
    ground = load_ground(camera)
    messages = read_back(out)
    names = tuple(json.loads(rtseg_metadata(out)["classes /demo/classes"]))
    masks = {m.sequence: ros for _, ch, m, ros in messages if ch.topic == "/demo/classes"}
    for _, ch, msg, grid in messages:
        if ch.topic != "/demo/grid":
            continue
        mask = masks[msg.sequence]
        want = ground.cost_grid(np.frombuffer(bytes(mask.data), np.uint8).reshape(
            mask.height, mask.width), names)
        assert np.array_equal(np.asarray(grid.data, np.int8).reshape(ground.grid.shape), want)
        assert {0, 40, 100} <= set(np.unique(want).tolist())  # road, pavement, the rest


def test_a_split_rosbag2_folder_reads_back_with_another_rosbag2_reader(node, tmp_path):
    """`--out run --split-mb`: run/run_N.mcap + metadata.yaml, read by the `rosbags`
    library (its own metadata and MCAP parsers, as `ros2 bag` reads the folder: files in
    the listed order, topics, counts) and replayed by `rtseg run --source run`."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    out, split = tmp_path / "run", 50_000
    report = record(RecordConfig(endpoint=node, topics=TOPICS, out=str(out), count=36,
                                 timeout_s=DEADLINE_S, split_mb=split / 1e6))
    names = [f"run_{i}.mcap" for i in range(report.files)]
    assert report.files >= 2 and sorted(p.name for p in out.iterdir()) == sorted(
        [*names, "metadata.yaml"])
    ours = [read_back(out / name) for name in names]  # the mcap library, file by file
    assert all((out / n).stat().st_size >= split for n in names[:-1])  # split past the size
    store = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(out) as bag:
        assert bag.message_count == 36 == sum(len(m) for m in ours)
        assert {c.topic: c.msgtype for c in bag.connections} == {
            "/demo/drivable": "sensor_msgs/msg/Image", "/demo/classes": "sensor_msgs/msg/Image",
            "/demo/image": "sensor_msgs/msg/CompressedImage"}
        assert [(f["path"], f["message_count"]) for f in bag.storage.files] == [
            (n, len(m)) for n, m in zip(names, ours)]
        theirs = [(c.topic, t, store.deserialize_cdr(raw, c.msgtype))
                  for c, t, raw in bag.messages()]
        span = (bag.start_time, bag.end_time)
    flat = [(ch.topic, msg.log_time, ros) for file in ours for _, ch, msg, ros in file]
    assert span == (min(t for _, t, _ in flat), max(t for _, t, _ in flat) + 1)
    info = recording_info(str(out))  # rtseg info
    assert [(Path(f["path"]).name, f["messages"], f["complete"]) for f in info["files"]] == [
        (n, len(m), True) for n, m in zip(names, ours)]
    assert info["rtseg"]["endpoint"] == node and "classes /demo/classes" in info["rtseg"]
    assert [(topic, t) for topic, t, _ in theirs] == [(topic, t) for topic, t, _ in flat]
    for (_, _, got), (_, _, want) in zip(theirs, flat):
        assert bytes(got.data) == bytes(want.data) and got.header.stamp.sec == (
            want.header.stamp.sec) and got.header.stamp.nanosec == want.header.stamp.nanosec
    from rtseg.stream.sources import SourceSpec, open_source

    jpegs = [bytes(ros.data) for topic, _, ros in flat if topic == "/demo/image"]
    with open_source(SourceSpec(spec=str(out))) as source:  # every file, in order
        frames = [source.read(timeout=5.0) for _ in jpegs]
        assert source.read(timeout=5.0) is None
    for got, jpeg in zip(frames, jpegs):
        want = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert got is not None and np.array_equal(got.image, want)


def test_max_files_keeps_the_newest_files_listed_and_readable(node, tmp_path):
    """`--max-files 2`: a rolling recording; the folder holds the two newest files, the
    metadata lists exactly them, and both readers agree on what is left."""
    from rosbags.rosbag2 import Reader

    out = tmp_path / "ring"
    report = record(RecordConfig(endpoint=node, topics=TOPICS, out=str(out), count=36,
                                 timeout_s=DEADLINE_S, split_mb=0.05, max_files=2))
    opened = report.files + report.deleted
    assert report.files == 2 and report.deleted >= 1
    kept = [f"ring_{opened - 2}.mcap", f"ring_{opened - 1}.mcap"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*kept, "metadata.yaml"])
    assert listed_files(out) == kept
    ours = [read_back(out / name) for name in kept]
    with Reader(out) as bag:
        assert bag.message_count == sum(len(m) for m in ours) < 36
        theirs = [(c.topic, t) for c, t, _ in bag.messages()]
    assert theirs == [(ch.topic, msg.log_time) for file in ours for _, ch, msg, _ in file]
    assert f"(2 files; {report.deleted} older deleted by --max-files)" in report.summary()


def test_status_heartbeats_are_diagnostic_arrays_ros_reads(node, tmp_path):
    """`NAME/status` -> `/NAME/status` diagnostic_msgs/DiagnosticArray: decoded by mcap_ros2
    from the recorded schema and by `rosbags` with its own ROS 2 type definitions (so the
    CDR layout is ROS's)."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    out = tmp_path / "health"
    report = record(RecordConfig(endpoint=node, topics=("demo/status",), out=str(out), count=2,
                                 timeout_s=DEADLINE_S))
    assert report.counts == {"demo/status": 2}
    ours = [ros for _, _, _, ros in read_back(out / "health_0.mcap")]
    store = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(out) as bag:
        assert [(c.topic, c.msgtype) for c in bag.connections] == [
            ("/demo/status", "diagnostic_msgs/msg/DiagnosticArray")]
        theirs = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in bag.messages()]
    assert len(ours) == len(theirs) == 2
    for mine, ros in zip(ours, theirs):
        assert ros.header.frame_id == mine.header.frame_id == "demo"
        assert stamp_ns(ros) == stamp_ns(mine) > 0
        node_entry, source = ros.status
        assert (node_entry.level, node_entry.name, node_entry.message) == (0, "rtseg/demo",
                                                                           "running")
        assert (source.level, source.name, source.message, source.hardware_id) == (
            0, "rtseg/demo/demo", "ok", "demo")
        values = {kv.key: kv.value for kv in source.values}
        assert set(values) == {"fps", "dropped", "last_seq"} and int(values["last_seq"]) >= -1
        assert [(s.name, s.level, s.message, [(kv.key, kv.value) for kv in s.values])
                for s in mine.status] == [
            (s.name, s.level, s.message, [(kv.key, kv.value) for kv in s.values])
            for s in ros.status]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_one_clear_error(node, tmp_path):
    """Writing into /dev/full fails as a full disk does (ENOSPC, at the first chunk)."""
    out = tmp_path / "full.mcap"
    out.symlink_to("/dev/full")
    with pytest.raises(RtsegError, match=r"cannot write .*full\.mcap: No space left on device"):
        record(RecordConfig(endpoint=node, topics=("demo/classes",), out=str(out), count=200,
                            timeout_s=DEADLINE_S))


def test_play_publishes_the_recording_as_the_node_did(node, tmp_path):
    """`rtseg play`: a recording back on the wire (looping, so a subscriber that joins late
    still gets every message): the recorded masks pixel for pixel, with their seq, stamps,
    frame_id and class names; images byte for byte; status heartbeats."""
    from rtseg.play import PlayConfig, Player

    out = tmp_path / "drive.mcap"
    record(RecordConfig(endpoint=node, topics=(*TOPICS, "demo/status"), out=str(out),
                        count=40, timeout_s=DEADLINE_S))
    recorded = {(ch.topic.lstrip("/"), msg.sequence): ros
                for _, ch, msg, ros in read_back(out) if not ch.topic.endswith("/status")}
    names = tuple(json.loads(rtseg_metadata(out)["classes /demo/classes"]))
    player = Player(PlayConfig(path=str(out), bind="tcp://127.0.0.1:*", rate=4.0, loop=True,
                               delay_s=0.0))
    statuses: list = []
    thread = threading.Thread(target=player.run, daemon=True)
    try:
        with MaskSubscriber(player.endpoint, (*TOPICS, "demo/status"), timeout_ms=200,
                            on_status=statuses.append) as sub:
            thread.start()
            got: dict[tuple[str, int], tuple] = {}
            deadline = time.monotonic() + DEADLINE_S
            while set(recorded) - set(got) and time.monotonic() < deadline:
                try:
                    header, data = sub.recv()
                except TimeoutError:
                    continue
                got[(header.topic, header.seq)] = (header, data)
    finally:
        player.stop.set()
        thread.join(timeout=30)
        player.close()
    assert not set(recorded) - set(got), "every recorded message played"
    for key, ros in recorded.items():
        header, data = got[key]
        assert header.stamp_ns == stamp_ns(ros) and header.frame_id == "demo"
        if header.kind == "image":
            assert data.tobytes() == bytes(ros.data)
            continue
        assert data.shape == (ros.height, ros.width) and data.tobytes() == bytes(ros.data)
        assert header.classes == (names if header.kind == "classes" else
                                  ("not_drivable", "drivable"))
    assert statuses and statuses[0].node == "demo" and statuses[0].state == "running"
    assert [s.name for s in statuses[0].sources] == ["demo"]


@pytest.mark.parametrize("after_s", [0.0, 0.35, 0.8])
def test_a_signal_stops_play_at_any_moment(node, tmp_path, after_s):
    """SIGTERM while it waits between messages or sends them: exit 0 with its summary (a
    handler that took the wait's lock once hung the player for good)."""
    out = tmp_path / "short.mcap"
    record(RecordConfig(endpoint=node, topics=("demo/classes",), out=str(out), count=6,
                        timeout_s=DEADLINE_S))
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "play", str(out), "--bind",
                             "tcp://127.0.0.1:*", "--loop", "--delay", "0", "--rate", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert " playing " in proc.stderr.readline()
        time.sleep(after_s)  # the moment the signal lands, not a wait for something
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLINE_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert err.strip().splitlines()[-1].endswith("stopped by SIGTERM"), err


def test_play_refuses_a_recording_without_rtseg_metadata(tmp_path):
    from rtseg.play import PlayConfig, Player

    with open(tmp_path / "camera.mcap", "wb") as stream:  # a camera bag: no rtseg record
        from mcap_ros2.writer import Writer

        Writer(stream).finish()
    with pytest.raises(RtsegError, match="not an rtseg recording"):
        Player(PlayConfig(path=str(tmp_path / "camera.mcap"), bind="tcp://127.0.0.1:*"))


def stamp_ns(ros) -> int:
    return ros.header.stamp.sec * 10**9 + ros.header.stamp.nanosec


def header_of(kind: str, stamp: int, names: tuple[str, ...]) -> MaskHeader:
    """The header `draw` reads of a recorded mask: its kind and class names."""
    return MaskHeader(f"demo/{kind}", 1, kind, 0, stamp, "demo", 640, 360, "mono8", names, "")


def rtseg_metadata(path: Path) -> dict[str, str]:
    with open(path, "rb") as stream:
        return next(m.metadata for m in make_reader(stream).iter_metadata() if m.name == "rtseg")


def run_record(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtseg", "record", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_the_command_writes_count_masks_and_the_video(node, tmp_path):
    out, video = tmp_path / "x.mcap", tmp_path / "x.mp4"
    proc = run_record(node, *TOPICS, "--out", str(out), "--count", "12", "--mp4", str(video),
                      "--timeout", "60")
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err
    assert "rtseg record: 12 messages" in err.splitlines()[-1]
    messages = read_back(out)
    masks = [ros for schema, _, _, ros in messages if schema.name == "sensor_msgs/msg/Image"]
    assert len(messages) == 12 and len(masks) >= 8
    assert all(m.encoding == "mono8" and (m.height, m.width) == (360, 640) for m in masks)
    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (360, 640, 3)


def test_the_command_records_grids_with_camera(node, tmp_path):
    out = tmp_path / "g.mcap"
    camera = REPO / "launch" / "cameras" / "demo.toml"
    proc = run_record(node, "demo/drivable", "--out", str(out), "--count", "2", "--camera",
                      f"demo={camera}", "--timeout", "60")
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err
    topics = {t["topic"]: t["count"] for t in recording_info(str(out))["topics"]}
    assert topics == {"/demo/drivable": 2, "/demo/grid": 2, "/demo/scan": 2}


@pytest.mark.parametrize("out", ["stopped.mcap", "stopped"])
def test_sigterm_finishes_a_readable_file(node, tmp_path, out):
    """One file, and a rosbag2 folder split every 0.2 s (its metadata.yaml listing them)."""
    out = tmp_path / out
    split = () if out.suffix else ("--split-seconds", "0.2")
    proc = run_record(node, "demo/classes", "--out", str(out), *split)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr],
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while "first message: demo/classes" not in lines.get(
                timeout=max(0.0, deadline - time.monotonic())):
            pass
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DEADLINE_S)
    finally:
        proc.kill()
        reader.join(timeout=10)
    err = "".join(lines.queue)
    assert proc.returncode == 0, err
    last = err.splitlines()[-1]
    assert last.startswith("rtseg record: ") and last.endswith("stopped by SIGTERM"), last
    if split:
        files = listed_files(out)
        assert files == [f"stopped_{i}.mcap" for i in range(len(files))]
        messages = [m for name in files for m in read_back(out / name)]
    else:
        messages = read_back(out)
    assert len(messages) >= 1 and all(ch.topic == "/demo/classes" for _, ch, _, _ in messages)


@pytest.mark.parametrize("cfg, problem", [
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/mask",), "x.mcap"), "cannot record"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/drivable",), "x.mcap", count=0), "--count"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/image",), "x.mcap", mp4="x.mp4"), "--mp4"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/image",), "x.mcap", overlay=True),
     "--overlay draws masks"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/classes",), "no/such/x.mcap"), "no/such"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/classes",), "x.mcap", split_mb=5),
     "split a rosbag2 folder: give --out a folder name"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/classes",), "run", split_seconds=-1),
     "--split-seconds must be positive"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/classes",), "{full}"),
     "the folder exists and is not empty"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/classes",), "{file}"), "it is a file"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/classes",), "run", max_files=3),
     "--max-files keeps the newest N >= 2 files of a split recording"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/classes",), "run", split_mb=1, max_files=1),
     "got 1"),
    (RecordConfig("tcp://127.0.0.1:5555", ("demo/image",), "x.mcap", cameras=("c.toml",)),
     "--camera puts masks on the ground: record a NAME/drivable topic"),
])
def test_bad_requests_are_refused_before_anything_opens(cfg, problem, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old_0.mcap").write_bytes(b"")
    (tmp_path / "file").write_text("a file, not a folder")
    cfg = replace(cfg, out=cfg.out.format(full=tmp_path / "full", file=tmp_path / "file"))
    with pytest.raises(RtsegError, match=problem):
        check_config(cfg)
