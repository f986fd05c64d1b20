"""A real camera, where one is attached (/dev/video0); skipped cleanly elsewhere."""

from __future__ import annotations

import glob

import pytest

pytestmark = [
    pytest.mark.camera,
    pytest.mark.skipif(not glob.glob("/dev/video*"), reason="no camera attached (/dev/video*)"),
]


def test_node_publishes_camera_frames(endpoint, tiny_checkpoint, first_mask):
    from rtseg.config import RunConfig

    cfg = RunConfig(source="camera0", model=str(tiny_checkpoint), bind=endpoint, device="cpu",
                    max_frames=10, status_every=0)
    report, header, mask = first_mask(cfg, "camera0/drivable")
    assert report.published == 10
    assert header.frame_id == "camera0" and mask.shape == (header.height, header.width)


def test_camera_is_asked_for_a_size(endpoint, tiny_checkpoint, first_mask, caplog):
    """640x480 is a mode of nearly every camera: granted, the masks come at that size;
    refused, the node says what the camera gives instead."""
    from rtseg.config import RunConfig

    cfg = RunConfig(source="camera0", model=str(tiny_checkpoint), bind=endpoint, device="cpu",
                    max_frames=3, status_every=0, capture_size=(480, 640))
    report, header, mask = first_mask(cfg, "camera0/drivable")
    assert mask.shape == (480, 640) or "frames, not 480x640" in caplog.text
