"""RTSP cameras (`rtseg run --source rtsp://...`) against a real RTSP server speaking
RTP/JPEG over TCP (tests/rtsp_server.py): FFmpeg, through OpenCV, is the client. A camera
that dies and comes back: tests/test_status.py; one that hangs: here; both for HTTP and
RTSP cameras alike."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import running_node  # noqa: I001  (tests/ is on sys.path)
from mjpeg_server import MjpegCamera
from rtsp_server import RtspCamera

from rtseg.cli import main
from rtseg.config import RunConfig
from rtseg.protocol import NodeStatus
from rtseg.stream.live import StreamOptions, open_url


def test_frames_arrive_as_the_camera_sent_them():
    """Each frame read is one the camera sent, decoded (JPEG decoders differ a little:
    FFmpeg's and libjpeg's upsampling; a frame rebuilt wrong would be far off)."""
    with RtspCamera() as camera:
        device = open_url(camera.url, camera.url, StreamOptions.parse(["rtsp_transport=tcp"]))
        try:
            frames = [device.read()[0] for _ in range(3)]
        finally:
            device.release()
        sent = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                for jpeg in list(camera.recent)]
    for frame in frames:
        assert frame.shape == (96, 128, 3)
        nearest = min(np.abs(frame.astype(int) - s.astype(int)).mean() for s in sent)
        assert nearest < 5, nearest


def test_a_node_segments_an_rtsp_camera(tiny_checkpoint):
    with RtspCamera() as camera:
        cfg = RunConfig(source=camera.url, name="cam", model=str(tiny_checkpoint),
                        device="cpu", status_every=0, stream_options=("rtsp_transport=tcp",))
        with running_node(cfg, ["cam/drivable"]) as node:
            masks = [node.sub.recv(timeout_ms=30000) for _ in range(5)]
        transports = camera.setups()
    seqs = [header.seq for header, _ in masks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert all(m.shape == (96, 128) and h.frame_id == camera.url for h, m in masks)
    assert transports and all("TCP" in t for t in transports), transports


def test_a_transport_the_camera_refuses_is_one_line_naming_the_url(tmp_path):
    """rtsp_transport=udp reaches FFmpeg (the camera saw a UDP SETUP), the camera answers
    461, and the node stops before the model loads."""
    with RtspCamera() as camera:
        result = CliRunner().invoke(main, ["run", "--source", camera.url, "--stream-option",
                                           "rtsp_transport=udp", "--bind",
                                           f"ipc://{tmp_path}/n.sock"])
        transports = camera.setups()
    assert result.exit_code == 1, result.output
    assert f"stream {camera.url} could not be opened" in result.output, result.output
    assert transports and all("UDP" in t for t in transports), transports


@pytest.mark.slow
@pytest.mark.parametrize("kind", [MjpegCamera, RtspCamera], ids=["http", "rtsp"])
def test_a_camera_that_hangs_is_reconnected(tiny_checkpoint, kind):
    """The connection stays open but no frame comes: the read times out (a few seconds),
    the status says reconnecting, and once the camera sends again masks follow."""
    with kind() as camera:
        cfg = RunConfig(source=camera.url, name="cam", model=str(tiny_checkpoint),
                        device="cpu", status_every=0)
        with running_node(cfg, ["cam/drivable"]) as node:
            before = [node.sub.recv(timeout_ms=30000)[0].seq for _ in range(3)]
            camera.freeze()
            frozen_at, states = time.monotonic(), []
            while "reconnecting" not in states:
                assert time.monotonic() - frozen_at < 30, states
                message = node.sub.recv_message(timeout_ms=5000)
                if isinstance(message, NodeStatus):
                    states.append(message.source("cam").state)
            noticed_after = time.monotonic() - frozen_at
            camera.thaw()
            thawed_at = time.monotonic()
            while not isinstance(message := node.sub.recv_message(timeout_ms=30000), tuple):
                pass
            back_after = time.monotonic() - thawed_at
    assert message[0].seq > before[-1]
    assert back_after < 20, f"masks came back {back_after:.1f} s after the camera"
    print(f"{kind.__name__}: reconnecting after {noticed_after:.1f} s frozen, masks "
          f"{back_after:.1f} s after it sent again")
