import json
import subprocess
import sys

import pytest
import torch

from rtseg.checkpoint import load_checkpoint
from rtseg.config import load_train_config
from rtseg.errors import RtsegError

RECIPE = """
[model]
name = "lraspp_mobilenet_v3"
[data]
kind = "synthetic"
height = 64
width = 96
train_size = 16
val_size = 4
[train]
steps = 3
batch_size = 2
eval_every = 3
warmup_steps = 1
device = "cpu"
[output]
path = "{out}"
logs = "{out}.logs"
"""


def test_recipe_loads_with_overrides(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE.format(out=tmp_path / "m.pt"))
    cfg = load_train_config(path, {"train.steps": 9, "train.batch_size": None})
    assert cfg.train.steps == 9
    assert cfg.train.batch_size == 2
    assert cfg.data.height == 64
    # a recipe counted in epochs: --steps still sets the run's length, --epochs too
    path.write_text(RECIPE.format(out=tmp_path / "m.pt").replace("[train]\n",
                                                                 "[train]\nepochs = 5\n"))
    assert load_train_config(path).train.epochs == 5
    cfg = load_train_config(path, {"train.steps": 9, "train.epochs": None})
    assert (cfg.train.steps, cfg.train.epochs) == (9, 0)
    assert load_train_config(path, {"train.epochs": 2}).train.epochs == 2
    with pytest.raises(RtsegError, match="--steps and --epochs both"):
        load_train_config(path, {"train.steps": 9, "train.epochs": 2})


def test_unknown_recipe_key_is_named(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE.format(out="x.pt") + "\n[optim]\nlr = 1\n")
    with pytest.raises(RtsegError, match="unknown key.*optim"):
        load_train_config(path)
    path.write_text("[train]\nstepz = 3\n")
    with pytest.raises(RtsegError, match="stepz"):
        load_train_config(path)
    path.write_text("[train\n")
    with pytest.raises(RtsegError, match="not valid TOML"):
        load_train_config(path)


def test_tiny_checkpoint_describes_itself(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    meta = ckpt.meta
    assert meta.model == "lraspp_mobilenet_v3"
    assert meta.classes[:2] == ("road", "lane_marking")
    assert set(meta.drivable) == {"road", "lane_marking"}
    assert meta.input_size == (64, 96)
    assert 0.0 <= meta.metrics["miou"] <= 1.0
    assert meta.metrics["step"] in (2, 4)
    assert meta.recipe["data"]["kind"] == "synthetic"
    out = ckpt.build()(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, len(meta.classes), 64, 96)


def test_train_and_eval_commands(tmp_path):
    path = tmp_path / "r.toml"
    out = tmp_path / "m.pt"
    path.write_text(RECIPE.format(out=out))
    done = subprocess.run([sys.executable, "-m", "rtseg", "train", str(path), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["checkpoint"] == str(out) and out.is_file()
    done = subprocess.run([sys.executable, "-m", "rtseg", "eval", str(out), "--count", "4",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["images"] == 4
    assert set(result["iou"]) == set(load_checkpoint(out).meta.classes)
    assert 0.0 <= result["pixel_accuracy"] <= 1.0


def test_every_shipped_recipe_loads():
    from pathlib import Path

    from rtseg.models import model_info

    recipes = sorted((Path(__file__).parents[1] / "train").glob("*.toml"))
    names = {p.stem for p in recipes}
    assert {"demo", "camvid-lraspp", "camvid-unet", "camvid-deeplabv3", "camvid-deeplabv3plus",
            "cityscapes-lraspp", "voc-deeplabv3", "folder-binary-road"} <= names
    for path in recipes:
        cfg = load_train_config(path)
        model_info(cfg.model.name)
        assert cfg.data.kind in {"synthetic", "folder", "coco", "cityscapes", "voc", "camvid"}
        assert cfg.data.height % 32 == 0 and cfg.data.width % 32 == 0
        assert cfg.model.binary == (cfg.train.loss == "bce")
