"""A real camera, where one is attached (/dev/video0); skipped cleanly elsewhere."""

from __future__ import annotations

import glob
import threading

import pytest

pytestmark = [
    pytest.mark.camera,
    pytest.mark.skipif(not glob.glob("/dev/video*"), reason="no camera attached (/dev/video*)"),
]


def test_node_publishes_camera_frames(endpoint, tiny_checkpoint):
    from rtseg.client import MaskSubscriber
    from rtseg.config import RunConfig
    from rtseg.stream.node import run_node

    cfg = RunConfig(source="camera0", model=str(tiny_checkpoint), bind=endpoint, device="cpu",
                    max_frames=10, status_every=0)
    with MaskSubscriber(endpoint, ["camera0/drivable"], timeout_ms=20000) as sub:
        reports = []
        node = threading.Thread(target=lambda: reports.append(run_node(cfg)))
        node.start()
        header, mask = sub.recv()
        node.join(timeout=60)
    assert reports and reports[0].published == 10
    assert header.frame_id == "camera0" and mask.shape == (header.height, header.width)
