"""Frame sources against real files, real folders, real sockets and real capture threads.

Every test frame is one flat colour whose blue value is 8 x its index, so the index
survives MJPG compression and can be read back from any frame.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.errors import RtsegError
from rtseg.stream.live import THREAD_PREFIX, LatestFrameReader
from rtseg.stream.sources import (
    Frame,
    SourceSpec,
    open_source,
    parse_source,
    source_name,
    without_password,
)

pytestmark = pytest.mark.timeout(60)

H, W = 48, 64


def indexed_image(index: int) -> np.ndarray:
    """(H, W, 3) uint8 BGR frame whose index is recoverable with `index_of`."""
    image = np.empty((H, W, 3), np.uint8)
    image[:] = (8 * index, 255 - 8 * index, 100)
    return image


def index_of(image: np.ndarray) -> int:
    return int(round(float(image[..., 0].mean()) / 8))


def write_video(path: Path, count: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for index in range(count):
        writer.write(indexed_image(index))
    writer.release()
    return path


def write_pngs(folder: Path, count: int) -> Path:
    folder.mkdir()
    for index in range(count):
        assert cv2.imwrite(str(folder / f"frame_{index}.png"), indexed_image(index))
    (folder / "notes.txt").write_text("not an image")
    return folder


def read_all(source, limit: int = 1000) -> list[Frame]:
    frames = []
    while len(frames) < limit:
        frame = source.read(timeout=2.0)
        if frame is None:
            break
        frames.append(frame)
    return frames


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


@pytest.mark.parametrize("text, expected", [
    ("camera0", ("camera", 0)), ("0", ("camera", 0)), ("camera12", ("camera", 12)),
    ("rtsp://cam.local:554/live", ("url", "rtsp://cam.local:554/live")),
    ("https://h/x.mjpg", ("url", "https://h/x.mjpg")), ("demo", ("demo", "demo")),
    ("frames/*.png", ("images", "frames/*.png")), ("clip.mp4", ("video", "clip.mp4")),
    ("shot.JPG", ("images", "shot.JPG")),
])
def test_parse_source(text, expected):
    assert parse_source(text) == expected


def test_parse_source_folder_and_unsupported(tmp_path):
    assert parse_source(str(tmp_path)) == ("images", str(tmp_path))
    with pytest.raises(RtsegError, match="unsupported stream scheme 'ftp://'"):
        parse_source("ftp://host/x")
    with pytest.raises(RtsegError, match="no file or folder of that name exists"):
        parse_source(str(tmp_path / "nothing_here"))
    with pytest.raises(RtsegError, match="--fps must be a positive number"):
        SourceSpec("demo", fps=0.0)


def test_names(tmp_path):
    assert source_name("camera", 3) == "camera3"
    assert source_name("url", "rtsp://user:pw@cam-01.local:554/s") == "cam-01_local"
    assert source_name("url", "http://192.168.1.10/x.mjpg") == "192_168_1_10"
    assert source_name("demo", "demo") == "demo"
    assert source_name("video", "a/my clip.v1.avi") == "my_clip_v1"
    assert source_name("images", str(tmp_path / "run 7")) == "run_7"
    assert source_name("images", "some/frames/*.png") == "frames"
    assert without_password("rtsp://user:pw@h/s") == "rtsp://user:***@h/s"


def test_video_every_frame_in_order(tmp_path):
    path = write_video(tmp_path / "road clip.avi", 12, fps=25.0)
    start = time.monotonic()
    with open_source(SourceSpec(str(path))) as source:
        frames = read_all(source)
        assert source.exhausted and source.read() is None
        stats = source.stats
        assert (source.name, source.frame_id, source.live) == ("road_clip", str(path), False)
    assert time.monotonic() - start < 12 / 25.0  # not paced by default
    assert [f.seq for f in frames] == list(range(12))
    assert [index_of(f.image) for f in frames] == list(range(12))
    image = frames[0].image
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
    assert all(f.label is None for f in frames)
    assert stats == {"captured": 12, "delivered": 12, "dropped": 0, "read_failures": 0}


@pytest.mark.parametrize("kind", ["video", "images"])
def test_loop_keeps_counting(tmp_path, kind):
    target = (write_video(tmp_path / "a.avi", 5, 25.0) if kind == "video"
              else write_pngs(tmp_path / "pngs", 5))
    with open_source(SourceSpec(str(target), loop=True)) as source:
        frames = [source.read() for _ in range(13)]
        assert not source.exhausted
    assert [f.seq for f in frames] == list(range(13))
    assert [index_of(f.image) for f in frames] == [seq % 5 for seq in range(13)]


def test_folder_and_glob_in_natural_order(tmp_path):
    folder = write_pngs(tmp_path / "run_3", 12)  # frame_2 must come before frame_10
    for spec in (str(folder), str(folder / "frame_*.png")):
        with open_source(SourceSpec(spec)) as source:
            frames = read_all(source)
            assert source.exhausted and source.name == "run_3"
        assert [f.seq for f in frames] == list(range(12))
        assert [index_of(f.image) for f in frames] == list(range(12))


def paced_target(tmp_path: Path, kind: str, count: int, fps: float) -> SourceSpec:
    if kind == "video":
        return SourceSpec(str(write_video(tmp_path / "p.avi", count, fps)), pace=True)
    return SourceSpec(str(write_pngs(tmp_path / "p", count)), pace=True, fps=fps)


@pytest.mark.parametrize("kind", ["video", "images"])
def test_pace_drops_frames_for_a_slow_consumer(tmp_path, kind):
    with open_source(paced_target(tmp_path, kind, 30, fps=50.0)) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
            time.sleep(0.07)  # 3.5 frame periods
        stats = source.stats
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)) and 5 <= len(seqs) < 15
    assert max(np.diff(seqs)) >= 3
    assert [index_of(f.image) for f in frames] == seqs  # skipped frames really skipped
    assert stats["dropped"] > 0 and stats["delivered"] == len(frames)
    assert stats["captured"] == stats["delivered"] + stats["dropped"]


@pytest.mark.parametrize("kind", ["video", "images"])
def test_pace_keeps_every_frame_for_a_fast_consumer(tmp_path, kind):
    with open_source(paced_target(tmp_path, kind, 16, fps=32.0)) as source:
        start = time.monotonic()
        frames = read_all(source)
        elapsed = time.monotonic() - start
    assert [f.seq for f in frames] == list(range(16))
    assert 15 / 32.0 * 0.95 <= elapsed < 2.0  # played at the file's rate, not faster


@pytest.mark.parametrize("make, message", [
    (lambda p: str(p / "missing.mp4"), "video file .*missing.mp4 not found"),
    (lambda p: p.joinpath("noise.mp4").write_bytes(os.urandom(4096)) and str(p / "noise.mp4"),
     "could not be decoded by OpenCV"),
    (lambda p: p.joinpath("empty").mkdir() or str(p / "empty"), "holds no image files"),
    (lambda p: str(p / "*.png"), "matched no image files"),
    (lambda p: p.joinpath("bad.png").write_bytes(b"not a png") and str(p / "bad.png"),
     "image .*bad.png could not be decoded"),
    (lambda p: "camera37", r"camera 37 could not be opened: is it connected\? .*v4l2-ctl"),
])
def test_bad_sources_fail_fast_with_clear_messages(tmp_path, make, message):
    spec = SourceSpec(make(tmp_path))
    start = time.monotonic()
    with pytest.raises(RtsegError, match=message):
        open_source(spec)
    assert time.monotonic() - start < 2.0
    assert not capture_threads()


def test_unreachable_url_fails_at_start(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/x.mjpg"
    start = time.monotonic()
    with pytest.raises(RtsegError, match=f"stream {url} could not be opened"):
        open_source(SourceSpec(url))
    assert time.monotonic() - start < 6.0
    assert not capture_threads()


class FlakyDevice:
    """A real Device whose reads fail `failures` times before frames flow again."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.reopen_times: list[float] = []
        self.released = threading.Event()
        self.count = 0

    def read(self):
        time.sleep(0.002)
        if self.failures > 0:
            self.failures -= 1
            return None
        self.count += 1
        return indexed_image(self.count % 30), None

    def reopen(self) -> bool:
        self.reopen_times.append(time.monotonic())
        return True

    def release(self) -> None:
        self.released.set()


def test_failed_reads_are_counted_and_reopened_with_backoff():
    device = FlakyDevice(failures=4)
    reader = LatestFrameReader(device, "flaky", backoff_s=(0.02, 0.05))
    try:
        taken = reader.take(timeout=2.0)
        assert taken is not None and index_of(taken[2]) >= 1  # a real frame, not a blank one
        gaps = np.diff(device.reopen_times)
        assert len(device.reopen_times) == 4
        assert gaps[0] >= 0.035 and gaps[-1] >= 0.045  # 0.02, 0.04, 0.05 (cap), 0.05
        assert reader.stats()["read_failures"] == 4
    finally:
        reader.close()
    assert device.released.is_set() and not reader.thread.is_alive()


def test_demo_delivers_labelled_newest_frames_and_closes_promptly():
    synthetic = pytest.importorskip("rtseg.data.synthetic")
    reference = synthetic.SceneStream(seed=5, height=72, width=128)
    expected = [reference.next() for _ in range(40)]
    with open_source(SourceSpec("demo", fps=100.0, demo_height=72, demo_width=128,
                                seed=5)) as source:
        assert (source.name, source.live, source.frame_id) == ("demo", True, "demo")
        frames = []
        for _ in range(5):
            frames.append(source.read(timeout=2.0))
            time.sleep(0.05)  # about five frames are rendered meanwhile
        start = time.monotonic()
    assert time.monotonic() - start < 1.0 and not capture_threads()
    seqs = [f.seq for f in frames]
    assert max(np.diff(seqs)) >= 2 and seqs == sorted(set(seqs))
    for frame in [f for f in frames if f.seq < len(expected)][:3]:
        rgb, mask = expected[frame.seq]
        assert frame.image.shape == (72, 128, 3) and frame.image.flags.c_contiguous
        np.testing.assert_array_equal(frame.image, rgb[..., ::-1])  # BGR like OpenCV
        np.testing.assert_array_equal(frame.label, mask)
    stats = source.stats
    assert stats["dropped"] > 0 and stats["captured"] >= seqs[-1] + 1


def test_demo_close_does_not_wait_for_the_next_frame():
    pytest.importorskip("rtseg.data.synthetic")
    with open_source(SourceSpec("demo", fps=0.5, demo_height=36, demo_width=64)) as source:
        assert source.read(timeout=1.0).seq == 0  # rendered at once
        assert source.read(timeout=0.1) is None  # the next one is 2 s away
        start = time.monotonic()
    assert time.monotonic() - start < 0.5 and not capture_threads()


def test_video_decodes_into_a_ring_of_given_arrays(tmp_path):
    """The CUDA node's path: frames land in arrays it allocated (pinned there), reused
    round-robin, with the same pixels as a plain decode."""
    from tests.test_node import write_video

    path = tmp_path / "ring.avi"
    write_video(path, 7, size=(48, 64))
    with open_source(SourceSpec(spec=str(path))) as plain:
        expected = [plain.read().image.copy() for _ in range(7)]
    made = []

    def alloc(shape):
        made.append(np.zeros(shape, dtype=np.uint8))
        return made[-1]

    with open_source(SourceSpec(spec=str(path))) as ringed:
        ringed.decode_into(alloc, count=3)
        for want in expected:
            image = ringed.read().image
            np.testing.assert_array_equal(image, want)
            if len(made):
                assert any(np.shares_memory(image, buf) for buf in made)
    assert len(made) == 3  # the first frame sets the shape; then 3 arrays, reused
