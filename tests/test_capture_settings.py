"""What a camera is asked for (`rtseg run --capture-size/--capture-fps/--capture-fourcc`):
asked through OpenCV, and what it gives instead named. Exercised here on a real
cv2.VideoCapture of a video file (which grants none of them); with a camera attached, also
on camera0 (tests/test_camera.py)."""

from __future__ import annotations

import logging

import cv2
import pytest
from click.testing import CliRunner

from rtseg.cli import main
from rtseg.errors import RtsegError
from rtseg.stream.live import CaptureSettings
from tests.test_node import write_video


def test_what_a_capture_does_not_grant_is_named(tmp_path):
    video = tmp_path / "drive.avi"  # MJPG, 64x96, 30 fps
    write_video(video, 2, size=(64, 96))
    cap = cv2.VideoCapture(str(video))
    try:
        assert CaptureSettings(size=(64, 96), fps=30.0, fourcc="MJPG").refused(cap) == []
        refused = CaptureSettings(size=(720, 1280), fps=60.0, fourcc="YUYV").apply(cap)
    finally:
        cap.release()
    assert refused == ["64x96 frames, not 720x1280", "30 fps, not 60",
                       "pixel format MJPG, not YUYV"]


@pytest.mark.parametrize("settings, problem", [
    (dict(fourcc="MJPEG"), "four characters"), (dict(fps=0.0), "--capture-fps must be > 0"),
    (dict(size=(0, 640)), "--capture-size must be positive"),
])
def test_bad_settings_name_the_flag(settings, problem):
    with pytest.raises(RtsegError, match=problem):
        CaptureSettings(**settings)


def test_capture_flags_need_a_camera_and_say_so(tmp_path, caplog):
    video = tmp_path / "drive.avi"
    write_video(video, 2, size=(64, 96))
    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(main, ["run", "--source", str(video), "--capture-size",
                                           "720x1280", "--bind", f"ipc://{tmp_path}/n.sock"])
    assert result.exit_code == 1, result.output
    assert "no --source here is a camera" in result.output + caplog.text
    result = CliRunner().invoke(main, ["run", "--capture-size", "720by1280"])
    assert result.exit_code == 1 and "is not HxW" in result.output + caplog.text
