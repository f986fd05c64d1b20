"""CUDA path of the node: same masks as the CPU, published from a GPU. Skipped without CUDA."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def test_cuda_pipeline_matches_cpu():
    from rtseg.backends import load_backend
    from rtseg.data.synthetic import SceneStream
    from rtseg.stream.pipeline import Pipeline

    cpu = Pipeline(load_backend("demo", "cpu"))
    gpu = Pipeline(load_backend("demo", "cuda"))
    stream = SceneStream(seed=3)
    for _ in range(5):
        image = np.ascontiguousarray(stream.next()[0][:, :, ::-1])
        a, b = cpu(image), gpu(image)
        assert (a.classes == b.classes).mean() > 0.99
        assert a.drivable.shape == b.drivable.shape == image.shape[:2]


def test_node_runs_on_cuda(endpoint, first_mask):
    from rtseg.config import RunConfig

    cfg = RunConfig(source="demo", bind=endpoint, device="cuda", max_frames=30, status_every=0)
    report, header, mask = first_mask(cfg, "demo/drivable")
    assert report.published == 30
    assert header.kind == "drivable" and mask.shape == (360, 640)
