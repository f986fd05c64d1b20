"""FFmpeg options for stream URLs (`rtseg run --stream-option NAME=VALUE`): they reach
FFmpeg at every open, through OpenCV's OPENCV_FFMPEG_CAPTURE_OPTIONS, and only for that
open. Checked on a real MJPEG-over-HTTP camera (tests/mjpeg_server.py) that records each
request: FFmpeg's http protocol sends the `user_agent` option as the User-Agent header."""

from __future__ import annotations

import logging
import os

import pytest
from click.testing import CliRunner
from conftest import running_node  # noqa: I001  (tests/ is on sys.path)
from mjpeg_server import MjpegCamera

from rtseg.cli import main
from rtseg.config import RunConfig
from rtseg.errors import RtsegError
from rtseg.stream.live import FFMPEG_OPTIONS_ENV, StreamOptions, open_url
from tests.test_node import write_video

AGENT = "rtseg-probe;a|b\\c"  # FFmpeg's own separators and escape inside a value


def user_agents(camera: MjpegCamera) -> list[str]:
    """The User-Agent header of each request the camera received, in order."""
    agents = []
    for request in list(camera.requests):
        lines = request.decode("latin-1").split("\r\n")
        agents += [line.split(":", 1)[1].strip() for line in lines
                   if line.lower().startswith("user-agent:")]
    return agents


def test_options_reach_ffmpeg_at_every_open_and_only_then(monkeypatch):
    monkeypatch.delenv(FFMPEG_OPTIONS_ENV, raising=False)
    options = StreamOptions.parse([f"user_agent={AGENT}", "fflags=nobuffer"])
    with MjpegCamera() as camera:
        device = open_url(camera.url, camera.url, options)
        try:
            image, label = device.read()
            assert image.shape == (96, 128, 3) and label is None
            assert FFMPEG_OPTIONS_ENV not in os.environ  # set for the open only
            assert device.reopen()  # a reconnect asks with the same options
        finally:
            device.release()
        plain = open_url(camera.url, camera.url)
        plain.release()
        agents = user_agents(camera)
    assert agents[:2] == [AGENT, AGENT]
    assert len(agents) == 3 and agents[2].startswith("Lavf")  # FFmpeg's own, not ours


def test_the_users_own_variable_is_kept_and_overridden_by_the_flag(monkeypatch):
    monkeypatch.setenv(FFMPEG_OPTIONS_ENV, "user_agent;from-env|fflags;nobuffer")
    with MjpegCamera() as camera:
        open_url(camera.url, camera.url, StreamOptions.parse(["user_agent=from-flag"])).release()
        open_url(camera.url, camera.url).release()
        agents = user_agents(camera)
    assert agents == ["from-flag", "from-env"]
    assert os.environ[FFMPEG_OPTIONS_ENV] == "user_agent;from-env|fflags;nobuffer"


def test_encoding_keeps_opencvs_rtsp_default_unless_a_transport_is_named():
    assert StreamOptions.parse(["fflags=nobuffer"]).encoded(None) == \
        "rtsp_flags;prefer_tcp|fflags;nobuffer"
    assert StreamOptions.parse(["rtsp_transport=udp"]).encoded(None) == "rtsp_transport;udp"
    assert StreamOptions.parse(["max_delay=0"]).encoded("rtsp_transport;tcp") == \
        "rtsp_transport;tcp|max_delay;0"
    assert StreamOptions.parse(["headers=A: b=c"]).pairs == (("headers", "A: b=c"),)


@pytest.mark.parametrize("item", ["rtsp_transport", "=tcp", "rtsp transport=tcp", "a;b=c"])
def test_a_malformed_option_is_named(item):
    with pytest.raises(RtsegError, match=f"NAME=VALUE .*not {item!r}"):
        StreamOptions.parse([item])


def test_the_flag_needs_a_stream_url_and_says_so(tmp_path, caplog):
    video = tmp_path / "drive.avi"
    write_video(video, 2, size=(64, 96))
    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(main, ["run", "--source", str(video), "--stream-option",
                                           "rtsp_transport=tcp", "--bind",
                                           f"ipc://{tmp_path}/n.sock"])
    assert result.exit_code == 1, result.output
    assert "no --source here is one" in result.output + caplog.text
    with MjpegCamera() as camera:
        result = CliRunner().invoke(main, ["run", "--source", camera.url, "--stream-option",
                                           "tcp", "--bind", f"ipc://{tmp_path}/n.sock"])
    assert result.exit_code == 1 and "not 'tcp'" in result.output + caplog.text


def test_a_node_on_a_stream_opens_it_with_the_options(tiny_checkpoint, monkeypatch):
    monkeypatch.delenv(FFMPEG_OPTIONS_ENV, raising=False)
    with MjpegCamera() as camera:
        cfg = RunConfig(source=camera.url, name="cam", model=str(tiny_checkpoint),
                        device="cpu", status_every=0,
                        stream_options=(f"user_agent={AGENT}", "fflags=nobuffer"))
        with running_node(cfg, ["cam/drivable"]) as node:
            header, mask = node.sub.recv(timeout_ms=30000)
            assert mask.shape == (96, 128)
        assert user_agents(camera) == [AGENT]
