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
