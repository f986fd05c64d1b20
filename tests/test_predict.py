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
from rtseg.predict import evaluate_model, predict_folder, predict_source

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


def test_predict_on_a_video_writes_a_training_folder_that_trains(tmp_path, tiny_checkpoint):
    """From a video (every 3rd frame): images/ (the frames, lossless), masks/, overlay/ and
    data.toml, a [data] section the folder reader takes with the model's classes."""
    import tomllib

    from rtseg.config.recipe import DataConfig as RecipeData
    from rtseg.config.recipe import build_dataclass
    from rtseg.data.datasets import open_data

    video, rng = tmp_path / "drive.avi", np.random.default_rng(3)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (110, 70))
    for _ in range(7):
        writer.write(cv2.cvtColor(synthetic.render_scene(rng, 70, 110)[0], cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "labels"
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", str(tiny_checkpoint),
                           "--source", str(video), "--out", str(out), "--every", "3",
                           "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote 3 frames" in done.stderr.splitlines()[-1]
    stems = ["drive_000000", "drive_000003", "drive_000006"]
    for sub in ("images", "masks", "overlay"):
        assert sorted(p.stem for p in (out / sub).glob("*.png")) == stems
    predict_folder(str(tiny_checkpoint), out / "images", tmp_path / "again", device="cpu",
                   progress=False)  # the masks are of the very frames written
    for stem in stems:
        mask = cv2.imread(str(out / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (70, 110)
        assert np.array_equal(mask, cv2.imread(str(tmp_path / "again" / f"{stem}.png"),
                                               cv2.IMREAD_UNCHANGED))
    section = tomllib.loads((out / "data.toml").read_text())["data"]
    assert section["split"] == [0.9, 0.1] and Path(section["root"]) == out.resolve()
    data = build_dataclass(RecipeData, {**section, "height": 64, "width": 96,
                                        "split": [0.6, 0.4]}, "[data]")  # 3 frames: 2 + 1
    assert data.classes == tuple(synthetic.CLASSES) and data.drivable == tuple(
        synthetic.DRIVABLE)
    samples = [open_data(data, split) for split in ("train", "val")]
    assert sum(len(s) for s in samples) == 3
    image, mask = samples[0].load(0)
    assert image.shape[:2] == mask.shape and mask.max() < len(synthetic.CLASSES)


def test_predict_refuses_a_live_source(tmp_path, tiny_checkpoint):
    with pytest.raises(RtsegError, match="record a live source first"):
        predict_source(str(tiny_checkpoint), "camera0", str(tmp_path / "x"), device="cpu")


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


def test_predict_and_eval_run_the_engine_they_are_asked_for(tmp_path, scene_folder,
                                                           tiny_checkpoint):
    """--engine onnx compiles the checkpoint once into --engine-cache (parity-gated) and
    predicts / scores with it: the masks agree with eager's as the gate asks, eval names
    the engine, and the second command reuses the first one's engine."""
    cache, images = tmp_path / "cache", scene_folder / "val" / "images"
    engine = ["--engine", "onnx", "--engine-cache", str(cache), "--device", "cpu"]
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", str(tiny_checkpoint),
                           "--source", str(images), "--out", str(tmp_path / "onnx"), *engine],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    built = sorted(cache.glob("*-onnx-*.json"))
    predict_folder(str(tiny_checkpoint), images, tmp_path / "eager", device="cpu",
                   progress=False)
    for path in sorted((tmp_path / "eager").glob("*.png")):
        eager = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        compiled = cv2.imread(str(tmp_path / "onnx" / path.name), cv2.IMREAD_UNCHANGED)
        assert (eager == compiled).mean() >= 0.99  # the parity gate's criterion
    done = subprocess.run([sys.executable, "-m", "rtseg", "eval", str(tiny_checkpoint),
                           "--count", "4", "--json", *engine],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"].endswith("/onnx-fp32")
    assert sorted(cache.glob("*-onnx-*.json")) == built and len(built) == 2  # + its key


def test_eval_with_a_precision_and_no_engine_is_one_line(tiny_checkpoint):
    done = subprocess.run([sys.executable, "-m", "rtseg", "eval", str(tiny_checkpoint),
                           "--precision", "bf16"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert "--engine openvino" in done.stderr
