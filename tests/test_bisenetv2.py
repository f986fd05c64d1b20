"""BiSeNetV2 (rtseg's own): booster heads while training, logits alone otherwise; trained by
the real loop with BF16 autocast, channels_last and crops; compiled and parity-gated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rtseg.checkpoint import load_checkpoint
from rtseg.config import (
    AugmentConfig,
    CompileConfig,
    DataConfig,
    ModelConfig,
    OutputConfig,
    TrainConfig,
    TrainParams,
)
from rtseg.device import cpu_has_bf16
from rtseg.errors import RtsegError
from rtseg.export import compile_checkpoint
from rtseg.models import build_model
from rtseg.training.loop import train
from rtseg.training.losses import build_loss, with_boosters
from rtseg.training.run import fit_to_device

SMALL = DataConfig(height=64, width=96, train_size=16, val_size=4)


def test_training_mode_adds_four_booster_logits_at_input_size():
    torch.manual_seed(0)
    model = build_model("bisenetv2", 5, detail_channels=(16, 32), head_channels=32)
    x = torch.randn(2, 3, 64, 96)
    outputs = model.train()(x)
    assert isinstance(outputs, tuple) and len(outputs) == 5
    assert all(o.shape == (2, 5, 64, 96) for o in outputs)
    with torch.no_grad():
        logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5, 64, 96)


def test_booster_losses_are_added_with_their_weight():
    torch.manual_seed(0)
    ce = build_loss("ce")
    main, b1, b2 = (torch.randn(2, 4, 8, 8) for _ in range(3))
    target = torch.randint(0, 4, (2, 8, 8))
    total = with_boosters(ce, 0.5)((main, b1, b2), target)
    assert torch.allclose(total, ce(main, target) + 0.5 * (ce(b1, target) + ce(b2, target)))
    assert torch.equal(with_boosters(ce, 0.5)(main, target), ce(main, target))


def bisenet_config(tmp_path: Path, **train) -> TrainConfig:
    params = {"steps": 4, "batch_size": 2, "eval_every": 4, "warmup_steps": 1, "bn_batches": 2,
              "device": "cpu", "overlays": 1, "cpu_bf16": True, "channels_last": True,
              "loss": "ohem", **train}
    return TrainConfig(
        model=ModelConfig(name="bisenetv2",
                          kwargs={"detail_channels": [16, 32], "head_channels": 32}),
        data=SMALL, augment=AugmentConfig(crop=(64, 64), scale=(0.8, 1.5)),
        train=TrainParams(**params),
        output=OutputConfig(path=str(tmp_path / "bise.pt"), logs=str(tmp_path / "logs")))


@pytest.fixture(scope="module")
def bisenet_checkpoint(tmp_path_factory) -> Path:
    """A BiSeNetV2 trained 4 steps by the real loop: BF16 autocast (where the CPU has BF16),
    NHWC, 64x64 crops."""
    out = tmp_path_factory.mktemp("bise")
    train(bisenet_config(out), progress=False)
    return out / "bise.pt"


def test_trains_with_bf16_channels_last_and_crops(bisenet_checkpoint):
    ckpt = load_checkpoint(bisenet_checkpoint)
    assert ckpt.meta.model == "bisenetv2" and ckpt.meta.input_size == (64, 96)
    assert tuple(ckpt.meta.recipe["augment"]["crop"]) == (64, 64)
    assert ckpt.meta.recipe["train"]["cpu_bf16"] is cpu_has_bf16()  # what ran, not what was asked
    assert 0.0 <= ckpt.meta.metrics["miou"] <= 1.0
    logits = ckpt.build()(torch.zeros(1, 3, 64, 96))  # eval mode: the logits alone
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 7, 64, 96)


@pytest.mark.parametrize(("fmt", "precision"), [("onnx", None), ("openvino", "fp32")])
def test_compiles_and_passes_the_parity_gate(bisenet_checkpoint, tmp_path, fmt, precision):
    cfg = CompileConfig(checkpoint=str(bisenet_checkpoint), format=fmt, precision=precision,
                        out=str(tmp_path), device="cpu", frames=4)
    manifest = compile_checkpoint(cfg).manifest
    assert manifest.parity["passed"], manifest.parity
    assert tuple(manifest.inputs[0].shape[-2:]) == (64, 96)


def test_a_crop_off_the_32_grid_is_named(tmp_path):
    cfg = bisenet_config(tmp_path)
    bad = TrainConfig(model=cfg.model, data=cfg.data, augment=AugmentConfig(crop=(50, 64)),
                      train=cfg.train, output=cfg.output)
    with pytest.raises(RtsegError, match=r"\[augment\] crop must be multiples of 32"):
        train(bad, progress=False)


def test_bf16_autocast_is_kept_only_where_the_cpu_has_bf16(tmp_path, caplog):
    cfg = bisenet_config(tmp_path)
    fitted = fit_to_device(cfg, torch.device("cpu"))
    assert fitted.train.cpu_bf16 is cpu_has_bf16()
    warned = "this CPU has no BF16 instructions" in caplog.text
    assert warned is not cpu_has_bf16()
    assert fit_to_device(cfg, torch.device("cuda")) is cfg  # cpu_bf16 means nothing there
