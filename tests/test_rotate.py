"""`rtseg run --rotate` / `--flip`: frames turned and mirrored before segmenting, per source."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from rtseg.cli import main
from rtseg.config import RunConfig
from rtseg.data.synthetic import SceneStream, drivable_mask
from rtseg.errors import RtsegError
from rtseg.metrics import binary_iou
from tests.test_node import run_and_collect, write_video


def write_upside_down(path, frames: int, size=(360, 640)) -> list[np.ndarray]:
    """An MJPG video of demo scenes as a camera mounted upside down films them; returns
    each frame's upright label map."""
    stream = SceneStream(seed=3, height=size[0], width=size[1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0,
                             (size[1], size[0]))
    labels = []
    for _ in range(frames):
        image, label = stream.next()
        writer.write(cv2.rotate(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), cv2.ROTATE_180))
        labels.append(label)
    writer.release()
    return labels


def drivable_ious(cfg: RunConfig, labels: list[np.ndarray]) -> list[float]:
    received, report = run_and_collect(cfg, ["cam/drivable"])
    assert report.published == len(labels)
    return [binary_iou(mask, drivable_mask(labels[h.seq])) for h, mask in
            received["cam/drivable"]]


@pytest.mark.slow
def test_an_upside_down_camera_turned_back_is_segmented_upright(tmp_path):
    video = tmp_path / "cam.avi"
    labels = write_upside_down(video, 6)
    turned = drivable_ious(RunConfig(source=str(video), model="demo", device="cpu",
                                     status_every=0, hwm=100, rotate=180), labels)
    assert len(turned) == 6 and min(turned) >= 0.9, turned
    # the same frames not turned: the demo model, trained upright, finds little road
    as_filmed = drivable_ious(RunConfig(source=str(video), model="demo", device="cpu",
                                        status_every=0, hwm=100), labels)
    assert max(as_filmed) < min(turned) - 0.2, (as_filmed, turned)


def test_each_source_turns_its_own_way_and_the_image_topic_follows(tmp_path,
                                                                    tiny_checkpoint):
    side, front = tmp_path / "side.avi", tmp_path / "front.avi"
    write_video(side, 3, seed=1, size=(64, 96))
    write_video(front, 3, seed=2, size=(64, 96))
    cfg = RunConfig(source=(str(side), str(front)), name=("side", "front"),
                    model=str(tiny_checkpoint), device="cpu", status_every=0, hwm=100,
                    rotate=(90, 0), image_topic=True, image_fps=1000.0)
    topics = ["side/drivable", "side/classes", "side/image", "front/drivable", "front/image"]
    received, _ = run_and_collect(cfg, topics)
    for name, shape in (("side", (96, 64)), ("front", (64, 96))):
        masks = received[f"{name}/drivable"]
        assert [h.seq for h, _ in masks] == [0, 1, 2]
        assert all(m.shape == shape and (h.height, h.width) == shape for h, m in masks), name
        images = received[f"{name}/image"]
        assert images and all(cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape[:2] == shape
                              for _, jpeg in images), name
    assert all(m.shape == (96, 64) for _, m in received["side/classes"])


def write_left_half_bright(path) -> None:
    """Two 64x96 frames, white on the left half, black on the right."""
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[:, :48] = 255
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (96, 64))
    for _ in range(2):
        writer.write(frame)
    writer.release()


def published_images(tmp_path, tiny_checkpoint, names, **orient) -> dict[str, np.ndarray]:
    """The first NAME/image (grey) of a node reading the half-bright video once per name."""
    video = tmp_path / "half.avi"
    write_left_half_bright(video)
    cfg = RunConfig(source=(str(video),) * len(names), name=names, model=str(tiny_checkpoint),
                    device="cpu", status_every=0, hwm=100, image_topic=True, image_fps=1000.0,
                    **orient)
    received, _ = run_and_collect(cfg, [f"{name}/image" for name in names])
    return {name: cv2.imdecode(received[f"{name}/image"][0][1], cv2.IMREAD_GRAYSCALE)
            for name in names}


def test_a_quarter_turn_is_clockwise(tmp_path, tiny_checkpoint):
    """Bright on the left, turned 90 degrees clockwise: bright on top."""
    image = published_images(tmp_path, tiny_checkpoint, ("half",), rotate=90)["half"]
    assert image.shape == (96, 64)
    assert image[:40].mean() > 200 and image[56:].mean() < 50, image.mean(axis=1)


def test_flips_mirror_after_the_turn(tmp_path, tiny_checkpoint):
    """Bright on the left: mirrored left-right, bright on the right; turned 90 degrees
    (bright on top), then mirrored top-bottom, bright at the bottom."""
    images = published_images(tmp_path, tiny_checkpoint, ("mirror", "both"),
                              rotate=(0, 90), flip=("horizontal", "vertical"))
    mirror, both = images["mirror"], images["both"]
    assert mirror.shape == (64, 96) and both.shape == (96, 64)
    assert mirror[:, 56:].mean() > 200 and mirror[:, :40].mean() < 50, mirror.mean(axis=0)
    assert both[56:].mean() > 200 and both[:40].mean() < 50, both.mean(axis=1)


@pytest.mark.parametrize("rotate, sources, problem", [
    ((90, 0), ("a", "b", "c"), "2 --rotate for 3 --source"),
    ((45,), ("demo",), "unknown --rotate 45: use 0, 90, 180, 270"),
])
def test_bad_rotations_name_the_problem(rotate, sources, problem):
    with pytest.raises(RtsegError, match=problem):
        RunConfig(source=sources, rotate=rotate)
    with pytest.raises(RtsegError, match="2 --flip for 3 --source"):
        RunConfig(source=("a", "b", "c"), flip=("none", "vertical"))
    with pytest.raises(RtsegError, match="unknown --flip 'mirror': use none, horizontal"):
        RunConfig(flip="mirror")


def test_cli_refuses_other_angles_before_starting():
    result = CliRunner().invoke(main, ["run", "--rotate", "45"])
    assert result.exit_code == 2 and "'45' is not one of '0', '90', '180', '270'" in (
        result.output), result.output
    result = CliRunner().invoke(main, ["run", "--source", "demo", "--source", "demo",
                                       "--source", "demo", "--rotate", "90", "--rotate", "0"])
    assert result.exit_code == 1 and "2 --rotate for 3 --source" in result.output, (
        result.output)
