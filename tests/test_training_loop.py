"""The training loop on small generated data: it learns, logs, resumes exactly, and its
options (losses, frozen backbone, binary models, early stopping) do what they say."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rtseg.checkpoint import load_checkpoint
from rtseg.config import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    OutputConfig,
    TrainConfig,
    TrainParams,
)
from rtseg.errors import RtsegError
from rtseg.models import backbone_of, build_model
from rtseg.training.loop import train

SMALL = DataConfig(height=64, width=96, train_size=32, val_size=8)
NO_AUG = AugmentConfig(enabled=False)


def config(tmp_path: Path, name: str = "m", **train) -> TrainConfig:
    params = {"steps": 8, "batch_size": 4, "eval_every": 4, "warmup_steps": 2, "bn_batches": 2,
              "device": "cpu", "overlays": 2, **train}
    return TrainConfig(data=SMALL, augment=NO_AUG, train=TrainParams(**params),
                       output=OutputConfig(path=str(tmp_path / f"{name}.pt"),
                                           logs=str(tmp_path / f"{name}_logs")))


@pytest.mark.slow
def test_learns_and_writes_its_logs(tmp_path):
    cfg = config(tmp_path, steps=90, eval_every=30, lr=4e-3)
    result = train(cfg, progress=False)
    with open(tmp_path / "m_logs" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    mious = [float(r["val_miou"]) for r in rows]
    assert [int(r["step"]) for r in rows] == [30, 60, 90]
    assert mious[-1] >= 0.3, mious  # chance for 7 classes is ~0.07
    assert mious[-1] > mious[0]
    assert float(rows[-1]["loader_img_s"]) > 0 and float(rows[-1]["step_img_s"]) > 0
    assert result.metrics["miou"] == max(mious)
    assert (tmp_path / "m_logs" / "curves.png").stat().st_size > 1000
    overlays = sorted((tmp_path / "m_logs" / "overlays").glob("step_*.png"))
    assert len(overlays) == 3
    assert load_checkpoint(cfg.output.path).meta.metrics["step"] == result.best_step


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtseg", *args], capture_output=True,
                          text=True, timeout=600, **kw)


RECIPE = """
[data]
height = 64
width = 96
train_size = 32
val_size = 8
[augment]
scale = [0.75, 1.5]
[train]
steps = 36
batch_size = 4
eval_every = 6
warmup_steps = 2
bn_batches = 2
overlays = 0
device = "cpu"
ema = 0.9
[output]
path = "{out}/best.pt"
logs = "{out}/logs"
"""


@pytest.mark.slow
def test_stopped_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    for out in (whole, parts):
        out.mkdir()
        (out / "r.toml").write_text(RECIPE.format(out=out))
    done = run_cli("train", str(whole / "r.toml"), "--quiet")
    assert done.returncode == 0, done.stderr
    reference = json.loads(done.stdout.splitlines()[-1])

    node = subprocess.Popen([sys.executable, "-m", "rtseg", "train", str(parts / "r.toml"),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while not (parts / "logs" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    node.send_signal(signal.SIGINT)
    _, err = node.communicate(timeout=120)
    assert node.returncode == 0, err
    assert "stopped by SIGINT at step" in err and "--resume" in err
    stopped_at = int(err.split("at step ")[1].split(";")[0])
    assert stopped_at < 36

    done = run_cli("train", str(parts / "r.toml"), "--quiet", "--resume")
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout.splitlines()[-1])
    assert resumed["best_step"] == reference["best_step"]
    for key in ("miou", "drivable_iou", "pixel_accuracy", "loss", "step"):
        assert resumed["metrics"][key] == pytest.approx(reference["metrics"][key], abs=1e-7)
    assert resumed["metrics"]["iou"] == pytest.approx(reference["metrics"]["iou"], abs=1e-7)
    a = load_checkpoint(whole / "best.pt").state_dict
    b = load_checkpoint(parts / "best.pt").state_dict
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    with open(parts / "logs" / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(6, 37, 6))


def test_resume_without_state_is_a_clear_error(tmp_path):
    with pytest.raises(RtsegError, match="nothing to resume"):
        train(config(tmp_path), progress=False, resume=True)


@pytest.mark.parametrize("every, caught", [(4, "training loss of step 2"),
                                           (1, "validation loss after step 1")])
def test_a_non_finite_loss_stops_the_run_and_overwrites_nothing(tmp_path, every, caught):
    # an earlier, healthy run left its checkpoints in the same place
    train(config(tmp_path, steps=4, eval_every=4), progress=False)
    before = load_checkpoint(tmp_path / "m.pt").state_dict
    # lr 1e30: step 1's update sends the weights to ~1e30, so step 2's forward (or the
    # validation after step 1) gives NaN; the run must stop there instead of going on in NaN
    with pytest.raises(RtsegError, match=rf"{caught} is nan \(FP32, lr 1e\+30\).*saved "
                                         r"nothing.*Lower \[train\] lr"):
        train(config(tmp_path, lr=1e30, warmup_steps=1, eval_every=every), progress=False)
    after = load_checkpoint(tmp_path / "m.pt").state_dict
    assert all(torch.equal(before[k], after[k]) for k in before)
    state = torch.load(tmp_path / "m_logs" / "last.pt", weights_only=True)
    assert all(v.isfinite().all() for v in state["model"].values() if v.is_floating_point())


def test_frozen_backbone_keeps_its_weights(tmp_path):
    cfg = config(tmp_path, freeze_backbone=True, lr=1e-2)
    train(cfg, progress=False)
    torch.manual_seed(0)
    fresh = backbone_of(build_model("lraspp_mobilenet_v3", 7)).state_dict()
    trained = load_checkpoint(cfg.output.path).build()
    tuned = backbone_of(trained).state_dict()
    weights = [k for k in fresh if k.endswith("weight")]
    assert all(torch.equal(fresh[k], tuned[k]) for k in weights)
    head = trained.net.classifier.state_dict()
    torch.manual_seed(0)
    initial_head = build_model("lraspp_mobilenet_v3", 7).net.classifier.state_dict()
    assert any(not torch.equal(head[k], initial_head[k]) for k in head)


def test_early_stopping_and_select_by_loss(tmp_path):
    # lr 0 and frozen BN: every round scores the same, so only round 1 is an improvement
    cfg = config(tmp_path, steps=40, eval_every=4, lr=0.0, warmup_steps=1, patience=2,
                 select="loss", freeze_bn=True)
    result = train(cfg, progress=False)
    assert result.stopped_early
    assert result.steps == 12 and result.best_step == 4


def test_select_last_keeps_the_last_round_whatever_it_scores(tmp_path):
    cfg = config(tmp_path, steps=12, eval_every=4, patience=1, select="last")
    result = train(cfg, progress=False)
    assert not result.stopped_early and result.steps == 12 and result.best_step == 12
    assert load_checkpoint(cfg.output.path).meta.metrics["step"] == 12
    with pytest.raises(RtsegError, match="select must be miou, loss or last"):
        train(config(tmp_path, select="first"), progress=False)


@pytest.mark.parametrize("loss", ["dice", "ce+dice", "ohem", "ohem+lovasz"])
def test_other_losses_train(tmp_path, loss):
    result = train(config(tmp_path, loss=loss, steps=4), progress=False)
    assert 0.0 <= result.metrics["miou"] <= 1.0


def test_bad_options_are_named(tmp_path):
    with pytest.raises(RtsegError, match="loss bce"):
        train(config(tmp_path, loss="bce"), progress=False)
    with pytest.raises(RtsegError, match="unknown optimizer"):
        train(config(tmp_path, optimizer="lion"), progress=False)
    with pytest.raises(RtsegError, match="multiples of 32"):
        train(TrainConfig(data=DataConfig(height=50, width=96)), progress=False)
    with pytest.raises(RtsegError, match="no full batch"):
        train(config(tmp_path, batch_size=64), progress=False)
    with pytest.raises(RtsegError, match=r"\[train\] ema .* in \[0, 1\).*got 1.5"):
        train(config(tmp_path, ema=1.5), progress=False)


def test_ema_validates_and_saves_the_average_and_logs_the_raw_weights(tmp_path):
    cfg = config(tmp_path, steps=8, eval_every=8, lr=4e-3, ema=0.5)
    result = train(cfg, progress=False)
    with open(tmp_path / "m_logs" / "log.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["val_miou"]) == pytest.approx(result.metrics["miou"], abs=1e-9)
    assert float(row["val_miou_raw"]) == pytest.approx(result.metrics["raw_miou"], abs=1e-9)
    best = load_checkpoint(cfg.output.path).state_dict
    state = torch.load(tmp_path / "m_logs" / "last.pt", weights_only=True)
    averaged, raw = state["ema"], state["model"]
    assert int(averaged["n_averaged"]) == 8  # one update per optimizer step
    weights = [k for k, v in raw.items() if v.is_floating_point() and "running" not in k]
    # best.pt holds the average (BN statistics re-estimated for it), not the raw weights
    assert all(torch.equal(best[k], averaged[f"module.{k}"]) for k in best)
    assert sum(not torch.equal(best[k], raw[k]) for k in weights) > len(weights) // 2


def test_binary_model_on_a_two_class_folder(tmp_path, two_class_folder):
    cfg = TrainConfig(
        model=ModelConfig(binary=True),
        data=DataConfig(kind="folder", root=str(two_class_folder), height=64, width=96,
                        classes=("background", "road"), split=(0.75, 0.25)),
        augment=NO_AUG,
        train=TrainParams(steps=6, batch_size=3, eval_every=6, bn_batches=1, loss="bce",
                          device="cpu", overlays=1),
        output=OutputConfig(path=str(tmp_path / "bin.pt"), logs=str(tmp_path / "bin_logs")))
    train(cfg, progress=False)
    ckpt = load_checkpoint(cfg.output.path)
    assert ckpt.meta.binary and ckpt.meta.drivable == ("road",)
    logits = ckpt.build()(torch.zeros(1, 3, 64, 96))
    assert logits.shape == (1, 1, 64, 96)


def test_init_starts_from_a_checkpoint_and_checks_it_fits(tmp_path):
    first = config(tmp_path, name="a", lr=4e-3)
    train(first, progress=False)
    # lr 0 and frozen BN: a run started from `a` must end with a's weights exactly
    still = config(tmp_path, name="b", steps=4, lr=0.0, warmup_steps=1, freeze_bn=True)
    train(replace(still, model=ModelConfig(init=first.output.path)), progress=False)
    a = load_checkpoint(first.output.path).state_dict
    b = load_checkpoint(still.output.path).state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    other = ModelConfig(name="deeplabv3_mobilenet_v3", init=first.output.path)
    with pytest.raises(RtsegError, match=r"init .*a\.pt.*lraspp_mobilenet_v3"):
        train(replace(still, model=other), progress=False)


def test_init_grows_lraspp_by_the_skip_and_the_decoder_and_refuses_the_reverse(tmp_path):
    first = config(tmp_path, name="a", steps=4)
    train(first, progress=False)
    still = config(tmp_path, name="g", steps=4, lr=0.0, warmup_steps=1, freeze_bn=True)
    grown = ModelConfig(kwargs={"fine": True}, init=first.output.path)
    train(replace(still, model=grown), progress=False)
    a = load_checkpoint(first.output.path).state_dict
    g = load_checkpoint(still.output.path)
    assert g.meta.model_kwargs == {"fine": True}
    assert set(g.state_dict) - set(a) == {"net.fine_classifier.weight",
                                          "net.fine_classifier.bias"}
    assert all(torch.equal(a[k], g.state_dict[k]) for k in a)
    assert not g.state_dict["net.fine_classifier.weight"].any()  # zero start, lr 0
    # and once more, by the stride-4 decoder on top of the skip
    refined = replace(config(tmp_path, name="r", steps=4, lr=0.0, warmup_steps=1,
                             freeze_bn=True),
                      model=ModelConfig(kwargs={"fine": True, "refine": 8},
                                        init=still.output.path))
    train(refined, progress=False)
    r = load_checkpoint(refined.output.path).state_dict
    assert all(torch.equal(g.state_dict[k], r[k]) for k in g.state_dict)
    assert {k.split(".")[1] for k in set(r) - set(g.state_dict)} == {"refine"}
    from rtseg.config import CompileConfig
    from rtseg.export import compile_checkpoint

    engine = compile_checkpoint(CompileConfig(checkpoint=refined.output.path, format="onnx",
                                              out=str(tmp_path / "eng"), device="cpu",
                                              frames=2)).manifest
    assert engine.parity["passed"], engine.parity

    back = ModelConfig(init=still.output.path)  # plain from fine: a tensor would be lost
    with pytest.raises(RtsegError, match=r"do not fit this model.*fine_classifier"):
        train(replace(config(tmp_path, name="p", steps=4), model=back), progress=False)
    assert not (tmp_path / "p.pt").exists()
