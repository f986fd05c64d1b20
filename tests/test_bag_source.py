"""Replaying MCAP recordings (`--source drive.mcap[#TOPIC]`): real files written with the
mcap_ros2 writer (as other ROS 2 tools write them; `rtseg record`'s own files are replayed in
test_record), and a real node publishing their frames."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import running_node, until_stopping  # noqa: I001  (tests/ is on sys.path)
from mcap_ros2.writer import Writer

from rtseg.config import RunConfig
from rtseg.errors import RtsegError
from rtseg.ros2msg import COMPRESSED_MSGDEF, COMPRESSED_TYPE, IMAGE_MSGDEF, IMAGE_TYPE
from rtseg.rosbag2 import BagFile, write_metadata
from rtseg.stream.bag_source import camera_name, raw_image, split_bag_spec
from rtseg.stream.sources import SourceSpec, open_source, parse_source

pytestmark = pytest.mark.timeout(120)

H, W = 24, 40
PERIOD_NS = 50_000_000  # 20 messages a second
CAPTURED_NS = 1_765_000_000 * 10**9  # header.stamp of frame 0 (its log time: 1 s)
FRONT, REAR = "/front/image_raw", "/rear/image/compressed"


def frame(index: int) -> np.ndarray:
    """`(H, W, 3) uint8 BGR`, different for every index and in every channel."""
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def header(index: int) -> dict:
    sec, nanosec = divmod(CAPTURED_NS + index * PERIOD_NS, 1_000_000_000)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": "cam"}


def raw_message(index: int, pad: int = 8) -> dict:
    """An rgb8 sensor_msgs/Image whose rows carry `pad` bytes of padding."""
    rgb = cv2.cvtColor(frame(index), cv2.COLOR_BGR2RGB).reshape(H, W * 3)
    rows = np.concatenate([rgb, np.full((H, pad), 7, np.uint8)], axis=1)
    return {"header": header(index), "height": H, "width": W, "encoding": "rgb8",
            "is_bigendian": 0, "step": W * 3 + pad, "data": rows.tobytes()}


def png_message(index: int) -> dict:
    ok, png = cv2.imencode(".png", frame(index))
    assert ok
    return {"header": header(index), "format": "png", "data": png.tobytes()}


def write_bag(path: Path, count: int, topics=(FRONT, REAR), chunk_size: int = 1 << 20,
              message=None, first: int = 0, times_ms=None) -> Path:
    """Both cameras' frames `first`..`first + count - 1` at 20 Hz (or logged at `times_ms`
    after 1 s): FRONT raw rgb8, REAR png (lossless)."""
    with path.open("wb") as out:
        writer = Writer(out, chunk_size=chunk_size)
        schemas = {IMAGE_TYPE: writer.register_msgdef(IMAGE_TYPE, IMAGE_MSGDEF),
                   COMPRESSED_TYPE: writer.register_msgdef(COMPRESSED_TYPE, COMPRESSED_MSGDEF)}
        for index in range(first, first + count):
            t = 1_000_000_000 + (index * PERIOD_NS if times_ms is None else
                                 times_ms[index - first] * 1_000_000)
            for topic in topics:
                kind = IMAGE_TYPE if topic == FRONT else COMPRESSED_TYPE
                msg = (message or (raw_message if topic == FRONT else png_message))(index)
                writer.write_message(topic, schemas[kind], msg, log_time=t, publish_time=t)
        writer.finish()
    return path


def read_all(source, limit: int = 1000) -> list:
    frames = []
    while len(frames) < limit and (got := source.read(timeout=5.0)) is not None:
        frames.append(got)
    return frames


def test_specs_are_recognised_and_topics_name_the_camera():
    assert parse_source("drive.mcap") == ("bag", "drive.mcap")
    assert parse_source("runs/x.MCAP#/front/image") == ("bag", "runs/x.MCAP#/front/image")
    assert split_bag_spec("d.mcap#front/image") == ("d.mcap", "/front/image")
    assert split_bag_spec("d.mcap") == ("d.mcap", None)
    assert split_bag_spec("d.mp4") is None
    assert split_bag_spec("frames#1") is None  # not a recording: an ordinary path
    assert camera_name("/front/image_raw/compressed") == "front"
    assert camera_name("/demo/image") == "demo"
    assert camera_name("/camera/left/image_rect_color") == "camera_left"
    assert camera_name("/image") == "image"


@pytest.mark.parametrize(("suffix", "name"), [(FRONT, "front"), ("rear/image/compressed", "rear")])
def test_every_frame_of_the_topic_arrives_exactly(tmp_path, suffix, name):
    bag = write_bag(tmp_path / "drive.mcap", 12)
    with open_source(SourceSpec(spec=f"{bag}#{suffix}")) as source:
        assert source.name == name
        assert source.fps == pytest.approx(20.0)
        frames = read_all(source)
        assert source.exhausted
        assert source.stats == {"captured": 12, "delivered": 12, "dropped": 0,
                                "read_failures": 0}
    assert [f.seq for f in frames] == list(range(12))
    for got in frames:  # raw rgb8 with padded rows, and png: both lossless
        assert got.image.flags.c_contiguous
        np.testing.assert_array_equal(got.image, frame(got.seq))


def unstamped(index: int) -> dict:
    return {**png_message(index), "header": {"stamp": {"sec": 0, "nanosec": 0},
                                             "frame_id": ""}}


def test_recorded_stamps_are_the_capture_times_else_the_log_times(tmp_path):
    stamped = write_bag(tmp_path / "stamped.mcap", 4, topics=(REAR,))
    bare = write_bag(tmp_path / "bare.mcap", 4, topics=(REAR,), message=unstamped)
    before = time.time_ns()
    with open_source(SourceSpec(spec=str(stamped), recorded_stamps=True)) as source:
        frames = read_all(source)
    with open_source(SourceSpec(spec=str(bare), recorded_stamps=True)) as source:
        logged = read_all(source)
    with open_source(SourceSpec(spec=str(stamped))) as source:  # by default: read time
        read = read_all(source)
    after = time.time_ns()
    assert [f.stamp_ns for f in frames] == [CAPTURED_NS + i * PERIOD_NS for i in range(4)]
    assert [f.stamp_ns for f in logged] == [10**9 + i * PERIOD_NS for i in range(4)]
    assert all(before <= f.read_ns <= after for f in frames + logged)
    assert all(before <= f.stamp_ns <= after and f.read_ns is None for f in read)
    with pytest.raises(RtsegError, match="--stamps recorded needs a recording"):
        open_source(SourceSpec(spec="demo", recorded_stamps=True))


def test_loop_starts_the_recording_again(tmp_path):
    bag = write_bag(tmp_path / "drive.mcap", 5, topics=(FRONT,))
    with open_source(SourceSpec(spec=str(bag), loop=True)) as source:  # the only image topic
        frames = read_all(source, limit=12)
    assert [f.seq for f in frames] == list(range(12))
    for got in frames:
        np.testing.assert_array_equal(got.image, frame(got.seq % 5))


def read_timed(source, until_seq: int) -> tuple[float, list]:
    """(monotonic time before the first read, [(frame, monotonic time it came)])."""
    start, got = time.monotonic(), []
    while (item := source.read(timeout=5.0)) is not None:
        got.append((item, time.monotonic()))
        if item.seq >= until_seq:
            break
    return start, got


def test_a_paced_replay_keeps_the_recorded_gaps(tmp_path):
    times = [0, 700, 750, 800, 850]  # a camera gap after frame 0 (average period 212 ms)
    bag = write_bag(tmp_path / "gap.mcap", 5, topics=(REAR,), times_ms=times)
    with open_source(SourceSpec(spec=str(bag), pace=True)) as source:
        start, got = read_timed(source, until_seq=4)
    assert [item.seq for item, _ in got][:2] == [0, 1]  # frame 1 is waited for: never late
    for item, came in got:  # no frame before its recorded time (an average pace: 212 ms)
        assert came - start >= times[item.seq] / 1000, (item.seq, came - start)
        np.testing.assert_array_equal(item.image, frame(item.seq))


def test_a_paced_replay_skips_what_a_slow_reader_missed_and_loops_on_time(tmp_path):
    bag = write_bag(tmp_path / "drive.mcap", 20, topics=(REAR,))
    with open_source(SourceSpec(spec=str(bag), pace=True)) as source:
        assert source.read(timeout=5.0).seq == 0
        time.sleep(0.4)  # a reader busy for 0.4 s: frames 1-6 are over 50 ms late by then
        later = source.read(timeout=5.0)
        assert later.seq >= 7 and source.stats["dropped"] >= 6
        np.testing.assert_array_equal(later.image, frame(later.seq))
    short = write_bag(tmp_path / "short.mcap", 3, topics=(REAR,))
    with open_source(SourceSpec(spec=str(short), pace=True, loop=True)) as source:
        start, got = read_timed(source, until_seq=5)
    assert got[-1][0].seq == 5
    for item, came in got:  # the second pass follows the first by one period (50 ms)
        due_ms = (item.seq // 3) * 150 + (item.seq % 3) * 50
        assert came - start >= due_ms / 1000, (item.seq, came - start)
        np.testing.assert_array_equal(item.image, frame(item.seq % 3))


def test_a_split_rosbag2_folder_plays_file_after_file(tmp_path):
    folder = tmp_path / "rosbag2_2026_12_06-10_00_00"  # no metadata.yaml: natural order
    folder.mkdir()
    for part, first in ((10, 20), (2, 10), (0, 0)):  # NAME_10 after NAME_2: natural order
        write_bag(folder / f"rosbag2_{part}.mcap", 10, first=first)
    assert parse_source(str(folder)) == ("bag", str(folder))
    with open_source(SourceSpec(spec=f"{folder}#{REAR}")) as source:
        assert source.fps == pytest.approx(20.0)
        frames = read_all(source)
    assert [f.seq for f in frames] == list(range(30))
    for got in frames:
        np.testing.assert_array_equal(got.image, frame(got.seq))


def test_a_folder_plays_in_its_metadata_order_then_the_files_it_does_not_list(tmp_path):
    """metadata.yaml's relative_file_paths set the order (a recorder killed after it wrote
    the metadata of its finished files leaves the last file unlisted: it plays last)."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name, first in (("b.mcap", 0), ("a.mcap", 10), ("c.mcap", 20)):
        write_bag(folder / name, 10, topics=(REAR,), first=first)
    write_metadata(folder, [BagFile("b.mcap"), BagFile("a.mcap")])
    with open_source(SourceSpec(spec=str(folder))) as source:
        frames = read_all(source)
    assert [f.seq for f in frames] == list(range(30))


def test_a_rosbag2_folder_written_by_another_implementation_replays_exactly(tmp_path):
    """A folder from the `rosbags` library's rosbag2 writer (metadata.yaml version 9, its
    own MCAP writer and message definitions), not from mcap_ros2: raw rgb8 frames."""
    from rosbags.rosbag2 import StoragePlugin
    from rosbags.rosbag2 import Writer as Rosbag2Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    image, stamp = store.types["sensor_msgs/msg/Image"], store.types["builtin_interfaces/msg/Time"]
    folder = tmp_path / "rosbag2_2026_12_07-09_00_00"
    with Rosbag2Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/cam/image_raw", image.__msgtype__, typestore=store)
        for index in range(8):
            msg = raw_message(index)
            sec, nanosec = divmod(CAPTURED_NS + index * PERIOD_NS, 1_000_000_000)
            ros = image(header=store.types["std_msgs/msg/Header"](stamp(sec, nanosec), "cam"),
                        height=H, width=W, encoding="rgb8", is_bigendian=0, step=msg["step"],
                        data=np.frombuffer(msg["data"], np.uint8))
            writer.write(conn, 1_000_000_000 + index * PERIOD_NS,
                         store.serialize_cdr(ros, image.__msgtype__))
    with open_source(SourceSpec(spec=str(folder), recorded_stamps=True)) as source:
        assert source.name == "cam"
        frames = read_all(source)
    assert [f.stamp_ns for f in frames] == [CAPTURED_NS + i * PERIOD_NS for i in range(8)]
    for index, got in enumerate(frames):
        np.testing.assert_array_equal(got.image, frame(index))


def test_a_file_cut_short_plays_up_to_the_cut(tmp_path, caplog):
    whole = write_bag(tmp_path / "whole.mcap", 30, topics=(FRONT,), chunk_size=4096)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mcap"  # a recorder killed mid-write: no summary, a torn chunk
    cut.write_bytes(data[: len(data) * 6 // 10])
    with open_source(SourceSpec(spec=str(cut))) as source:
        frames = read_all(source)
    assert 5 <= len(frames) < 30
    for got in frames:
        np.testing.assert_array_equal(got.image, frame(got.seq))
    assert "ends early" in caplog.text


def test_info_tells_files_topics_counts_and_a_cut_file(tmp_path):
    """`rtseg info` (rtseg.bag_info) on a rosbag2 folder of two files, the second cut short."""
    import json
    import subprocess
    import sys

    from rtseg.bag_info import format_info, recording_info

    folder = tmp_path / "drive"
    folder.mkdir()
    write_bag(folder / "drive_0.mcap", 10)
    whole = write_bag(tmp_path / "whole.mcap", 30, topics=(FRONT,), chunk_size=4096, first=10)
    data = whole.read_bytes()
    (folder / "drive_1.mcap").write_bytes(data[: len(data) * 6 // 10])  # no summary
    write_metadata(folder, [BagFile("drive_0.mcap"), BagFile("drive_1.mcap")])
    info = recording_info(str(folder))
    first, cut = info["files"]
    assert (first["messages"], first["complete"], cut["complete"]) == (20, True, False)
    assert 5 <= cut["messages"] < 30 and info["rosbag2_metadata"]
    assert info["messages"] == 20 + cut["messages"]
    assert [(t["topic"], t["type"], t["count"]) for t in info["topics"]] == [
        (FRONT, IMAGE_TYPE, 10 + cut["messages"]), (REAR, COMPRESSED_TYPE, 10)]
    assert info["topics"][1]["hz"] == pytest.approx(20.0)
    assert info["start_ns"] == 1_000_000_000 and info["rtseg"] is None
    text = format_info(info)
    assert "cut short: no summary" in text and "Count: 10 | 20.00 Hz" in text
    done = subprocess.run([sys.executable, "-m", "rtseg", "info", str(folder), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == info
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RtsegError, match="is not a recording: it holds no .mcap file"):
        recording_info(str(empty))


def bad_encoding(index: int) -> dict:
    return {**raw_message(index, pad=0), "encoding": "16UC1"}


@pytest.mark.parametrize(("spec", "problem"), [
    ("{bag}", "has 2 image topics (/front/image_raw, /rear/image/compressed): pick one"),
    ("{bag}#/left/image", "has no image topic /left/image (its image topics: /front"),
    ("{missing}", "not found"),
    ("{text}", "is not a readable MCAP file"),
])
def test_bad_recordings_are_refused_at_open(tmp_path, spec, problem):
    bag = write_bag(tmp_path / "drive.mcap", 2)
    text = tmp_path / "notes.mcap"
    text.write_text("not a recording")
    spec = spec.format(bag=bag, missing=tmp_path / "gone.mcap", text=text)
    with pytest.raises(RtsegError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        open_source(SourceSpec(spec=spec))


@pytest.mark.parametrize(("metadata", "problem"), [
    ("rosbag2_bagfile_information:\n  storage_identifier: sqlite3\n  relative_file_paths:\n"
     "    - run_0.db3\n", "storage 'sqlite3', not mcap; convert the recording with `ros2 bag "
     "convert`"),
    ("rosbag2_bagfile_information:\n  storage_identifier: mcap\n  relative_file_paths:\n"
     "    - run_0.mcap\n    - run_1.mcap\n", "lists run_1.mcap, not in the folder"),
    ("rosbag2_bagfile_information: [\n", "is not rosbag2 metadata"),
    ("rosbag2_bagfile_information:\n  storage_identifier: mcap\n  compression_mode: FILE\n"
     "  relative_file_paths:\n    - run_0.mcap.zstd\n", "compressed whole"),
])
def test_a_rosbag2_folder_it_cannot_replay_is_refused_naming_why(tmp_path, metadata, problem):
    folder = tmp_path / "run"
    folder.mkdir()
    write_bag(folder / "run_0.mcap", 2, topics=(REAR,))
    (folder / "metadata.yaml").write_text(metadata)
    with pytest.raises(RtsegError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        open_source(SourceSpec(spec=str(folder)))


def test_an_encoding_it_cannot_show_is_refused_at_open(tmp_path):
    bag = write_bag(tmp_path / "depth.mcap", 2, topics=(FRONT,), message=bad_encoding)
    with pytest.raises(RtsegError, match="encoding '16UC1' is not supported"):
        open_source(SourceSpec(spec=str(bag)))


def test_raw_images_in_each_supported_encoding():
    bgr = frame(3)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cases = {"bgr8": bgr, "rgb8": bgr[..., ::-1], "mono8": gray,
             "bgra8": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)}
    for encoding, pixels in cases.items():
        pixels = np.ascontiguousarray(pixels)
        step = pixels.nbytes // H
        got = raw_image(H, W, encoding, step, pixels.tobytes())
        expected = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR) if encoding == "mono8" else bgr
        np.testing.assert_array_equal(got, expected, err_msg=encoding)
    with pytest.raises(RtsegError, match="step 100 and"):
        raw_image(H, W, "bgr8", 100, bytes(100 * H))


@pytest.mark.slow
@pytest.mark.parametrize("stamps", ["read", "recorded"])
def test_the_node_segments_every_frame_of_a_recording(tmp_path, stamps):
    bag = write_bag(tmp_path / "drive.mcap", 8)
    cfg = RunConfig(source=f"{bag}#{REAR}", model="demo", device="cpu", status_every=0,
                    stamps=stamps)
    start = time.time_ns()
    with running_node(cfg, ["rear/drivable", "rear/classes"]) as node:
        messages = until_stopping(node.sub)
        report = node.report
    assert report.published == 8
    for topic in ("rear/drivable", "rear/classes"):
        got = [h for h, _ in messages if h.topic == topic]
        assert [h.seq for h in got] == list(range(8)), topic
        assert all((h.height, h.width) == (H, W) for h in got)
        assert all(h.frame_id == f"{bag}#{REAR}" for h in got)
        # Latency counts from the read either way: stamps of 2025 would make it months.
        assert all(0 < h.latency_ms["total"] < 600_000 for h in got)
        if stamps == "recorded":
            assert [h.stamp_ns for h in got] == [CAPTURED_NS + s * PERIOD_NS for s in range(8)]
        else:
            assert all(h.stamp_ns >= start for h in got)


def test_a_broken_message_mid_recording_is_skipped_and_the_node_goes_on(tmp_path, caplog):
    """Frame 3 is a depth image: it is skipped with a warning naming why and the other five
    are segmented; the node ends as at the recording's end (a --crop that does not fit,
    by contrast, ends the node with its error: tests/test_crop.py)."""
    def third_is_depth(index: int) -> dict:
        return bad_encoding(index) if index == 3 else raw_message(index)

    bag = write_bag(tmp_path / "drive.mcap", 6, topics=(FRONT,), message=third_is_depth)
    cfg = RunConfig(source=str(bag), model="demo", device="cpu", status_every=0)
    with running_node(cfg, ["front/drivable"]) as node:
        messages = until_stopping(node.sub)
        report = node.report
    assert report.published == 5
    assert len([h for h, _ in messages if h.topic == "front/drivable"]) == 5
    assert "message 3 of /front/image_raw: image encoding '16UC1' is not supported" in (
        caplog.text)
