"""The bundled demo checkpoint: small, self-describing, and accurate on fresh scenes."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.checkpoint import load_checkpoint, resolve_checkpoint_path
from rtseg.data import synthetic
from rtseg.metrics import binary_iou


def test_demo_checkpoint_is_small_and_describes_itself():
    path = resolve_checkpoint_path("demo")
    assert path.stat().st_size <= 10 * 2**20
    meta = load_checkpoint("demo").meta
    assert meta.model == "lraspp_mobilenet_v3"
    assert meta.classes == synthetic.CLASSES
    assert set(meta.drivable) == set(synthetic.DRIVABLE)
    assert meta.recipe["data"]["kind"] == "synthetic"
    assert meta.metrics["drivable_iou"] >= 0.95


@pytest.mark.slow
def test_demo_drivable_iou_on_fresh_frames():
    """Scenes from a seed training never saw, through the node's own pipeline at 360x640."""
    from rtseg.backends import load_backend
    from rtseg.stream.pipeline import Pipeline

    pipeline = Pipeline(load_backend("demo", "cpu"))
    rng = np.random.default_rng(20261121)
    predicted, truth = [], []
    for _ in range(24):
        image, label = synthetic.render_scene(rng, 360, 640)
        masks = pipeline(np.ascontiguousarray(image[:, :, ::-1]))  # RGB -> BGR like OpenCV
        predicted.append(masks.drivable)
        truth.append(synthetic.drivable_mask(label))
    iou = binary_iou(np.stack(predicted), np.stack(truth))
    assert iou >= 0.95, iou
