"""`rtseg predict` and `rtseg eval` share the node's pipeline; an independent scorer agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.config import DataConfig
from rtseg.data import synthetic
from rtseg.errors import RtsegError
from rtseg.predict import evaluate_model, predict_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory) -> Path:
    """train/ and val/ {images,masks} of generated scenes, PNG, 7 synthetic classes."""
    root = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(9)
    for split, count in (("train", 2), ("val", 5)):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(count):
            image, label = synthetic.render_scene(rng, 70, 110)
            cv2.imwrite(str(root / split / "images" / f"s{i}.png"),
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / split / "masks" / f"s{i}.png"), label)
    return root


def test_predict_writes_masks_and_overlays(tmp_path, scene_folder, tiny_checkpoint):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", str(tiny_checkpoint),
                           "--source", str(scene_folder / "val" / "images"), "--out", str(out),
                           "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    masks = sorted(out.glob("*.png"))
    assert [p.name for p in masks] == [f"s{i}.png" for i in range(5)]
    for path in masks:
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (70, 110) and mask.dtype == np.uint8
        assert mask.max() < len(synthetic.CLASSES)
        assert cv2.imread(str(out / "overlay" / path.name)).shape == (70, 110, 3)


def test_eval_matches_an_independent_scorer(tmp_path, scene_folder, tiny_checkpoint):
    data = DataConfig(kind="folder", root=str(scene_folder), classes=synthetic.CLASSES,
                      drivable=synthetic.DRIVABLE)
    ours = evaluate_model(str(tiny_checkpoint), data, split="val", device="cpu")
    predict_folder(str(tiny_checkpoint), scene_folder / "val" / "images", tmp_path / "p",
                   device="cpu", progress=False)
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "score_masks.py"),
                           str(tmp_path / "p"), str(scene_folder / "val" / "masks"),
                           "--classes", "7", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    assert theirs["pixels"] == 5 * 70 * 110
    assert ours["miou"] == pytest.approx(theirs["miou"], abs=1e-9)
    assert ours["pixel_accuracy"] == pytest.approx(theirs["pixel_accuracy"], abs=1e-9)
    assert ours["images"] == 5


def test_eval_refuses_a_model_of_other_classes(scene_folder, tiny_checkpoint):
    data = DataConfig(kind="folder", root=str(scene_folder), classes=("a", "b"))
    with pytest.raises(RtsegError, match="not the model's"):
        evaluate_model(str(tiny_checkpoint), data, split="val", device="cpu")


def test_predict_bad_source(tmp_path, tiny_checkpoint):
    with pytest.raises(RtsegError, match="not a folder"):
        predict_folder(str(tiny_checkpoint), tmp_path / "none", tmp_path / "o", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RtsegError, match="no images"):
        predict_folder(str(tiny_checkpoint), tmp_path / "empty", tmp_path / "o", device="cpu")
