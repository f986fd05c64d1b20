"""The committed CamVid model: small, labelled with its licence, and good on real frames.

The accuracy check reads ../shared/data/camvid and skips cleanly where it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rtseg.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "benchmarks" / "models" / "camvid.pt"
CAMVID = REPO.parent / "shared" / "data" / "camvid"


def test_camvid_checkpoint_is_small_and_says_where_it_comes_from():
    assert MODEL.stat().st_size <= 15 * 2**20
    meta = load_checkpoint(MODEL).meta
    assert meta.classes[3] == "Road" and meta.drivable == ("Road",)
    assert "CamVid" in meta.notes and "CC BY-NC 4.0" in meta.notes
    assert meta.recipe["data"]["kind"] == "camvid"
    assert meta.metrics["miou"] > 0.5


@pytest.mark.slow
@pytest.mark.skipif(not (CAMVID / "val.txt").is_file(), reason="../shared/data/camvid absent")
def test_camvid_model_on_real_val_frames():
    from rtseg.config import DataConfig
    from rtseg.data.datasets import open_data
    from rtseg.predict import evaluate_model

    data = DataConfig(kind="camvid", root=str(CAMVID))
    assert len(open_data(data, "val")) == 101
    result = evaluate_model(str(MODEL), data, split="val", device="cpu")
    assert result["iou"]["Road"] > 0.85 and result["drivable_iou"] == result["iou"]["Road"]
    assert result["miou"] > 0.5


@pytest.mark.slow
@pytest.mark.skipif(not (CAMVID / "val.txt").is_file(), reason="../shared/data/camvid absent")
def test_headroom_script_scores_its_own_size_like_the_node():
    """benchmarks/camvid_headroom.py's single view at the checkpoint's size is the node's
    mask (what its tables are compared against), and the mirrored view is a different one."""
    import importlib.util

    import numpy as np
    import torch

    from rtseg.backends import load_backend
    from rtseg.config import DataConfig
    from rtseg.data.datasets import open_data
    from rtseg.stream.pipeline import Pipeline

    spec = importlib.util.spec_from_file_location(
        "camvid_headroom", REPO / "benchmarks" / "camvid_headroom.py")
    headroom = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headroom)
    ckpt = load_checkpoint(MODEL)
    own = tuple(ckpt.meta.input_size)
    samples = open_data(DataConfig(kind="camvid", root=str(CAMVID)), "val")
    pipeline = Pipeline(load_backend(str(MODEL), "cpu"), upsample="logits")
    model = ckpt.build("cpu")
    for i in (0, 50):
        image, truth = samples.load(i)
        node = pipeline(np.ascontiguousarray(image[:, :, ::-1])).classes
        with torch.inference_mode():
            views = headroom.views(model, image, [own], np.float32(ckpt.meta.mean),
                                   np.float32(ckpt.meta.std), truth.shape)
        plain, mirrored = (views[(own, m)].argmax(0).numpy() for m in (False, True))
        assert (plain == node).mean() > 0.999  # float rounding may flip a near tie
        assert 0.5 < (mirrored == node).mean() < 0.999
