"""`rtseg run --crop X,Y,W,H`: a box of each (turned, mirrored) frame kept before segmenting."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from rtseg.cli import main
from rtseg.config import FLIPS, ROTATIONS, RunConfig, parse_crop
from rtseg.errors import RtsegError
from rtseg.stream.feed import frame_transform
from tests.test_node import run_and_collect, write_video
from tests.test_rotate import write_left_half_bright


def numpy_reference(image: np.ndarray, rotate: int, flip: str, box) -> np.ndarray:
    """What frame_transform should give, written with numpy alone."""
    image = np.rot90(image, k=-rotate // 90)  # clockwise
    image = {"none": image, "horizontal": image[:, ::-1], "vertical": image[::-1]}[flip]
    if box is None:
        return image
    x, y, w, h = box
    return image[y:y + h if h else None, x:x + w if w else None]


@pytest.mark.parametrize("rotate", ROTATIONS)
@pytest.mark.parametrize("flip", FLIPS)
@pytest.mark.parametrize("box", [None, (3, 2, 5, 4), (0, 6, 0, 0), (1, 0, 0, 3)])
def test_turned_then_mirrored_then_cropped(rotate, flip, box):
    image = np.arange(10 * 14 * 3, dtype=np.uint16).reshape(10, 14, 3).astype(np.uint8)
    image[..., 0] = np.arange(10 * 14).reshape(10, 14) % 251  # every pixel told apart
    change = frame_transform(rotate, flip, box)
    if (rotate, flip, box) == (0, "none", None):
        assert change is None
        return
    expected = numpy_reference(image, rotate, flip, box)
    np.testing.assert_array_equal(change(image), expected)
    np.testing.assert_array_equal(change(image[..., 0]), expected[..., 0])  # label maps


def test_a_crop_alone_is_a_view_not_a_copy():
    image = np.zeros((20, 30, 3), np.uint8)
    kept = frame_transform(crop=(4, 5, 10, 6))(image)
    assert kept.shape == (6, 10, 3) and np.shares_memory(kept, image)


@pytest.mark.parametrize("box, frame", [((0, 0, 31, 0), (20, 30)), ((0, 15, 0, 6), (20, 30)),
                                        ((30, 0, 0, 0), (20, 30)), ((0, 0, 0, 20), (10, 10))])
def test_a_box_beyond_the_frame_is_an_error_naming_both(box, frame):
    with pytest.raises(RtsegError, match=rf"--crop {','.join(map(str, box))} does not fit "
                                         rf"its frames \({frame[1]} wide, {frame[0]} high"):
        frame_transform(crop=box)(np.zeros(frame, np.uint8))


@pytest.mark.parametrize("text, problem", [
    ("1,2,3", "is not X,Y,W,H"), ("a,b,c,d", "is not X,Y,W,H"), ("0x0+10+10", "is not X,Y"),
    ("0,-1,0,0", "must be >= 0")])
def test_bad_crops_name_the_problem(text, problem):
    with pytest.raises(RtsegError, match=problem):
        RunConfig(crop=text)


def test_crops_per_source():
    assert parse_crop("") is None and parse_crop("0,0,0,0") is None
    assert RunConfig(source=("a", "b"), crop="0,0,0,880").crops == ((0, 0, 0, 880),) * 2
    assert RunConfig(source=("a", "b"), crop=("", "1,2,3,4")).crops == (None, (1, 2, 3, 4))
    assert RunConfig(source=("a", "b")).crops == (None, None)
    with pytest.raises(RtsegError, match="2 --crop for 3 --source"):
        RunConfig(source=("a", "b", "c"), crop=("0,0,0,8", "0,0,0,8"))


def test_each_source_keeps_its_box_and_the_image_topic_follows(tmp_path, tiny_checkpoint):
    """Bright on the left half of 64x96 frames: `left` keeps columns 40-55 (half bright,
    half dark); `top` turns the frame (bright on top, 96x64) and keeps its top 40 rows."""
    video = tmp_path / "half.avi"
    write_left_half_bright(video)
    cfg = RunConfig(source=(str(video),) * 2, name=("left", "top"), model=str(tiny_checkpoint),
                    device="cpu", status_every=0, hwm=100, image_topic=True, image_fps=1000.0,
                    rotate=(0, 90), crop=("40,0,16,0", "0,0,0,40"))
    topics = [f"{name}/{kind}" for name in ("left", "top") for kind in
              ("drivable", "classes", "image")]
    received, report = run_and_collect(cfg, topics)
    assert report.published == 4
    for name, shape in (("left", (64, 16)), ("top", (40, 64))):
        for kind in ("drivable", "classes"):
            masks = received[f"{name}/{kind}"]
            assert [h.seq for h, _ in masks] == [0, 1], (name, kind)
            assert all(m.shape == shape and (h.height, h.width) == shape for h, m in masks)
    left = cv2.imdecode(received["left/image"][0][1], cv2.IMREAD_GRAYSCALE)
    top = cv2.imdecode(received["top/image"][0][1], cv2.IMREAD_GRAYSCALE)
    assert left.shape == (64, 16) and top.shape == (40, 64)
    assert left[:, :6].mean() > 200 and left[:, 10:].mean() < 50, left.mean(axis=0)
    assert top.mean() > 200, top.mean()


def test_the_demo_scores_its_cropped_labels(tmp_path, tiny_checkpoint):
    """The demo's labels are cut like its frames (the drivable IoU compares like with like)."""
    cfg = RunConfig(source="demo", name="cam", model=str(tiny_checkpoint), device="cpu",
                    status_every=0, hwm=100, max_frames=3, demo_size=(64, 96),
                    crop="8,16,64,0")
    received, report = run_and_collect(cfg, ["cam/drivable"])
    assert [m.shape for _, m in received["cam/drivable"]] == [(48, 64)] * 3
    assert report.demo_drivable_iou is not None and 0.0 <= report.demo_drivable_iou <= 1.0


def test_a_crop_that_does_not_fit_ends_the_node_with_one_line(tmp_path, tiny_checkpoint,
                                                              caplog):
    video = tmp_path / "drive.avi"
    write_video(video, 3, size=(64, 96))
    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(main, [
            "run", "--source", str(video), "--name", "cam", "--model", str(tiny_checkpoint),
            "--device", "cpu", "--crop", "0,0,128,0", "--bind", f"ipc://{tmp_path}/n.sock"])
    assert result.exit_code == 1, result.output
    assert (f"--source {video}: --crop 0,0,128,0 does not fit its frames (96 wide, 64 high"
            in result.output + caplog.text), result.output
    assert "Traceback" not in result.output + caplog.text


def test_cli_refuses_a_malformed_crop_before_starting():
    result = CliRunner().invoke(main, ["run", "--crop", "0,0,880"])
    assert result.exit_code == 1 and "--crop '0,0,880' is not X,Y,W,H" in result.output, (
        result.output)
