"""Several sources through one node: batched engine calls, own topics, own seq."""

from __future__ import annotations

import time

import pytest
from conftest import until_stopping  # noqa: I001  (tests/ is on sys.path)

from rtseg.backends import Backend, load_backend
from rtseg.client import MaskSubscriber
from rtseg.config import RunConfig
from rtseg.errors import RtsegError
from rtseg.stream.feed import FrameFeed
from rtseg.stream.memory import MemorySource, memory_frames
from rtseg.stream.sources import SourceSpec, open_source
from tests.test_node import run_and_collect, write_video


class CountingBackend(Backend):
    """A real backend that also records the batch size of every call."""

    def __init__(self, backend):
        self.inner, self.spec, self.device = backend, backend.spec, backend.device
        self.dtype, self.static_batch = backend.dtype, backend.static_batch
        self.batches: list[int] = []

    def __call__(self, batch):
        self.batches.append(batch.shape[0])
        return self.inner(batch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.inner.close()


def collect(cfg, topics, backend=None):
    """Every message on `topics` until the node ends, and its report."""
    return run_and_collect(cfg, topics, backend=backend)


def test_two_videos_one_node_batched_with_own_topics_and_seq(tmp_path, tiny_checkpoint):
    left, right = tmp_path / "left.avi", tmp_path / "right.avi"
    write_video(left, 12, seed=1, size=(120, 160))
    write_video(right, 8, seed=2, size=(96, 128))
    cfg = RunConfig(source=(str(left), str(right)), name=("left", "right"),
                    model=str(tiny_checkpoint), device="cpu", status_every=0)
    backend = CountingBackend(load_backend(str(tiny_checkpoint), "cpu"))
    topics = ["left/drivable", "left/classes", "right/drivable", "right/classes"]
    received, report = collect(cfg, topics, backend)

    # each source: every frame, in order, with its own seq, size and frame_id
    for name, count, shape, path in (("left", 12, (120, 160), left),
                                     ("right", 8, (96, 128), right)):
        for kind in ("drivable", "classes"):
            msgs = received[f"{name}/{kind}"]
            assert [h.seq for h, _ in msgs] == list(range(count)), (name, kind)
            assert all(m.shape == shape and h.frame_id == str(path) for h, m in msgs)
    assert report.per_name == {"left": 12, "right": 8}
    assert report.published == 20
    # frames of both cameras shared engine calls
    assert 2 in backend.batches
    assert sum(backend.batches) == 20


def test_names_are_derived_from_sources_and_made_unique(tmp_path, tiny_checkpoint):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write_video(first / "cam.avi", 3, size=(64, 96))
    write_video(second / "cam.avi", 3, size=(64, 96))
    cfg = RunConfig(source=(str(first / "cam.avi"), str(second / "cam.avi")),
                    model=str(tiny_checkpoint), device="cpu", status_every=0)
    received, report = collect(cfg, ["cam/drivable", "cam_2/drivable"])
    assert [h.seq for h, _ in received["cam/drivable"]] == [0, 1, 2]
    assert [h.seq for h, _ in received["cam_2/drivable"]] == [0, 1, 2]
    assert report.name == "cam,cam_2"


def test_name_count_must_match_sources():
    with pytest.raises(RtsegError, match="one --name per --source"):
        RunConfig(source=("demo", "demo"), name=("only",))
    with pytest.raises(RtsegError, match="must differ"):
        RunConfig(source=("demo", "demo"), name=("x", "x"))


def test_cli_runs_two_sources(tmp_path, endpoint, tiny_checkpoint, cli_env):
    import subprocess
    import sys

    video = tmp_path / "v.avi"
    write_video(video, 4, size=(64, 96))
    topics = ["front/classes", "rear/classes"]
    with MaskSubscriber(endpoint, topics, timeout_ms=20000) as sub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtseg", "run", "--source", str(video), "--source",
             str(video), "--name", "front", "--name", "rear", "--model", str(tiny_checkpoint),
             "--bind", endpoint, "--device", "cpu", "--status-every", "0", "--hwm", "100"],
            env=cli_env, stderr=subprocess.PIPE, text=True)
        seen = {t: [] for t in topics}
        while sum(map(len, seen.values())) < 8:
            header, _ = sub.recv()
            seen[header.topic].append(header.seq)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert seen == {"front/classes": [0, 1, 2, 3], "rear/classes": [0, 1, 2, 3]}
    assert "published 8 frames" in err


def test_every_camera_reaches_a_subscriber_at_the_default_queue(tmp_path, endpoint,
                                                                 tiny_checkpoint, cli_env):
    """--hwm counts frames: with four cameras a batch is eight masks back to back, and a
    queue of 4 messages lost the last cameras' (5-7 of 20 arrived) even for a subscriber that
    read everything."""
    import subprocess
    import sys

    video = tmp_path / "v.avi"
    write_video(video, 20, size=(64, 96))
    names = ("a", "b", "c", "d")
    topics = [f"{n}/{k}" for n in names for k in ("drivable", "classes")]
    counts = dict.fromkeys(topics, 0)
    with MaskSubscriber(endpoint, [*topics, *(f"{n}/status" for n in names)],
                        timeout_ms=60000) as sub:
        args = [a for n in names for a in ("--source", str(video), "--name", n)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtseg", "run", *args, "--model",
             str(tiny_checkpoint), "--bind", endpoint, "--device", "cpu",
             "--status-every", "0"], env=cli_env, stderr=subprocess.PIPE, text=True)
        try:
            for header, _ in until_stopping(sub):
                counts[header.topic] += 1
        finally:
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert min(counts.values()) >= 15, counts  # of 20: a stalled machine may drop a few


def test_feed_keeps_only_the_newest_frame_of_a_live_source():
    demo = open_source(SourceSpec(spec="demo", fps=200.0, demo_height=32, demo_width=48))
    feed = FrameFeed([demo])
    try:
        deadline = time.monotonic() + 30
        while demo.stats["captured"] <= 12 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling: frames are captured, none taken
        batch = feed.next_batch(timeout=2.0)
        assert len(batch) == 1 and batch[0].frame.seq > 10
        assert feed.dropped(0) >= batch[0].frame.seq - 1
    finally:
        feed.close()
        demo.close()


def test_feed_hands_out_every_frame_of_a_file_source_in_order():
    source = MemorySource(memory_frames((16, 24), count=2), limit=25)
    feed = FrameFeed([source])
    seqs = []
    while (batch := feed.next_batch(timeout=2.0)) is not None:
        seqs.extend(fed.frame.seq for fed in batch)
    feed.close()
    assert seqs == list(range(25))
    assert feed.dropped(0) == 0
