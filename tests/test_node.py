"""The node end to end: real video files, real sockets, real checkpoints."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import running_node, until_stopping  # noqa: I001  (tests/ is on sys.path)

from rtseg.config import RunConfig
from rtseg.data.synthetic import SceneStream, drivable_mask
from rtseg.errors import RtsegError
from rtseg.metrics import binary_iou


def write_video(path: Path, frames: int, seed: int = 7, size=(360, 640)) -> list[np.ndarray]:
    """Write an MJPG video of generated scenes; returns the label map of each frame."""
    stream = SceneStream(seed=seed, height=size[0], width=size[1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0,
                             (size[1], size[0]))
    labels = []
    for _ in range(frames):
        image, label = stream.next()
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        labels.append(label)
    writer.release()
    return labels


def run_and_collect(cfg: RunConfig, topics: list[str], backend=None):
    """Run a node in a thread, collecting every message on `topics` until it ends (its last
    status says ``stopping``: everything it published before has arrived).

    `backend`: an already loaded one for the node."""
    received: dict[str, list] = {t: [] for t in topics}
    with running_node(cfg, topics, backend=backend) as node:
        try:
            messages = until_stopping(node.sub)
        except TimeoutError as exc:  # say what became of the node
            raise AssertionError(f"{exc} (node thread alive: {node.thread.is_alive()}, "
                                 f"errors: {node.errors})") from None
        for message in messages:
            received[message[0].topic].append(message)
        report = node.report
    return received, report


@pytest.mark.slow
def test_node_on_a_video_file_publishes_accurate_masks(tmp_path):
    video = tmp_path / "drive.avi"
    labels = write_video(video, 40)
    cfg = RunConfig(source=str(video), model="demo",
                    device="cpu", status_every=0, hwm=100)
    received, report = run_and_collect(cfg, ["drive/drivable", "drive/classes"])
    assert report.published == 40
    for topic in ("drive/drivable", "drive/classes"):
        msgs = received[topic]
        assert len(msgs) == 40, topic  # the subscriber joined before the first frame
        seqs = [h.seq for h, _ in msgs]
        assert seqs == sorted(set(seqs)), "seq must increase"
        assert all(h.width == 640 and h.height == 360 for h, _ in msgs)
        assert all(h.frame_id == str(video) for h, _ in msgs)
    ious = [binary_iou(mask, drivable_mask(labels[h.seq])) for h, mask in
            received["drive/drivable"]]
    assert min(ious) >= 0.9, ious
    header, classes = received["drive/classes"][-1]
    assert header.classes[:2] == ("road", "lane_marking")
    assert classes.max() < len(header.classes)
    assert header.latency_ms["total"] > 0


@pytest.mark.parametrize("encoding", ["bits", "png"])
def test_node_encodings_and_name(tmp_path, tiny_checkpoint, encoding):
    video = tmp_path / "clip.avi"
    write_video(video, 6, size=(72, 100))
    cfg = RunConfig(source=str(video), model=str(tiny_checkpoint), name="front",
                    encoding=encoding, device="cpu",
                    status_every=0)
    received, report = run_and_collect(cfg, ["front/drivable", "front/classes"])
    assert report.published == 6
    drivable = received["front/drivable"]
    assert drivable and all(h.encoding == encoding for h, _ in drivable)
    assert all(m.shape == (72, 100) and set(np.unique(m)) <= {0, 1} for _, m in drivable)
    expected = "mono8" if encoding == "bits" else encoding
    assert all(h.encoding == expected for h, _ in received["front/classes"])


def test_max_frames_and_loop(tmp_path, tiny_checkpoint):
    video = tmp_path / "short.avi"
    write_video(video, 3, size=(64, 96))
    cfg = RunConfig(source=str(video), model=str(tiny_checkpoint), loop=True, max_frames=7,
                    device="cpu", status_every=0, hwm=100)
    received, report = run_and_collect(cfg, ["short/drivable"])
    assert report.published == 7
    assert [h.seq for h, _ in received["short/drivable"]][-1] == 6


def test_the_node_publishes_the_same_masks_with_and_without_overlap(tmp_path, tiny_checkpoint):
    video = tmp_path / "clip.avi"
    write_video(video, 8, size=(72, 100))
    masks = {}
    for overlap in ("on", "off"):
        cfg = RunConfig(source=str(video), model=str(tiny_checkpoint), overlap=overlap,
                        device="cpu", status_every=0, hwm=100)
        received, report = run_and_collect(cfg, ["clip/classes"])
        assert report.published == 8
        assert [h.seq for h, _ in received["clip/classes"]] == list(range(8))
        masks[overlap] = [m for _, m in received["clip/classes"]]
    for on, off in zip(masks["on"], masks["off"]):
        np.testing.assert_array_equal(on, off)


def test_an_unknown_overlap_mode_is_named():
    with pytest.raises(RtsegError, match="unknown --overlap 'sometimes': use on, off"):
        RunConfig(overlap="sometimes")


def test_masks_come_at_the_size_asked_for(tmp_path, tiny_checkpoint):
    """--mask-size input: the network's class map itself (64x96 here, frames 72x100);
    HxW: that map resized (nearest) to HxW; the drivable mask follows the classes."""
    from rtseg.backends import load_backend
    from rtseg.backends.preprocess import Preprocessor
    from rtseg.models import logits_to_classes

    video = tmp_path / "clip.avi"
    write_video(video, 4, size=(72, 100))
    got = {}
    for size in ("input", "36x50"):
        cfg = RunConfig(source=str(video), model=str(tiny_checkpoint), mask_size=size,
                        device="cpu", status_every=0, hwm=100)
        received, report = run_and_collect(cfg, ["clip/classes", "clip/drivable"])
        assert report.published == 4
        got[size] = [(h, m) for h, m in received["clip/classes"]]
        drivable = [m for _, m in received["clip/drivable"]]
        assert [m.shape for m in drivable] == [m.shape for _, m in got[size]]
    with load_backend(str(tiny_checkpoint), "cpu") as backend:
        prepare = Preprocessor(backend.spec.input_size, backend.spec.mean, backend.spec.std)
        capture = cv2.VideoCapture(str(video))
        for (header, at_input), (_, small) in zip(got["input"], got["36x50"]):
            ok, frame = capture.read()
            assert ok
            want = logits_to_classes(backend(prepare(frame)))[0].numpy().astype(np.uint8)
            assert (header.height, header.width) == (64, 96) == at_input.shape
            assert (at_input == want).mean() > 0.999  # ties between logits aside
            np.testing.assert_array_equal(
                small, cv2.resize(at_input, (50, 36), interpolation=cv2.INTER_NEAREST))
        capture.release()


def test_an_unknown_mask_size_is_named():
    with pytest.raises(RtsegError, match="unknown --mask-size 'big': use frame, input or HxW"):
        RunConfig(mask_size="big")
