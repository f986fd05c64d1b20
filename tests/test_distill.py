"""Knowledge distillation ([distill]): the loss is the KL divergence it says, the mirrored
teacher is mirror-symmetric, a run with a teacher trains and records it, weight 0 changes
nothing, and a teacher that does not fit is refused by name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rtseg.checkpoint import load_checkpoint
from rtseg.config import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    OutputConfig,
    TrainConfig,
    TrainParams,
)
from rtseg.errors import RtsegError
from rtseg.training.distill import Teacher, distill_loss
from rtseg.training.loop import train


def config(tmp_path: Path, teacher: str = "", name: str = "s", **distill) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(height=64, width=96, train_size=16, val_size=4),
        augment=AugmentConfig(enabled=False),
        train=TrainParams(steps=4, batch_size=4, eval_every=4, warmup_steps=1, bn_batches=1,
                          device="cpu", overlays=0, lr=4e-3),
        output=OutputConfig(path=str(tmp_path / f"{name}.pt"), logs=str(tmp_path / name)),
        distill=DistillConfig(teacher=teacher, **distill))


def test_the_loss_is_t2_times_the_kl_divergence():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 6, 7, generator=g)
    for t in (1.0, 2.0):
        agree = (logits / t).softmax(1)
        assert float(distill_loss(logits, agree, t)) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(2, 5, 6, 7, generator=g).softmax(1)
    q = (logits / 2.0).log_softmax(1)
    by_hand = (other * (other.log() - q)).sum(1).mean() * 4.0
    assert float(distill_loss(logits, other, 2.0)) == pytest.approx(float(by_hand), rel=1e-5)
    student = logits.clone().requires_grad_(True)
    before = distill_loss(student, other)
    before.backward()
    with torch.no_grad():
        after = distill_loss(student - 1.0 * student.grad, other)
    assert float(after) < float(before.detach())  # pulled towards the teacher
    with pytest.raises(RtsegError, match="differ"):
        distill_loss(logits, other[:, :4])


def test_the_mirrored_teacher_is_mirror_symmetric(tiny_checkpoint):
    net = load_checkpoint(tiny_checkpoint).build()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    teacher = Teacher(net, weight=1.0, temperature=1.0, flip=True)
    p = teacher.probs(x)
    assert p.shape == (2, net(x).shape[1], 64, 96)
    torch.testing.assert_close(p.sum(1), torch.ones(2, 64, 96))
    torch.testing.assert_close(teacher.probs(x.flip(-1)).flip(-1), p, atol=1e-5, rtol=0)
    plain = Teacher(net, 1.0, 1.0, flip=False).probs(x)
    assert not torch.allclose(plain, p, atol=1e-4)  # the mirror view does change the target
    fast = Teacher(net, 1.0, 1.0, flip=True, bf16=True).probs(x)
    torch.testing.assert_close(fast.sum(1), torch.ones(2, 64, 96))
    assert 0 < float((fast - p).abs().mean()) < 0.02  # BF16: rounded, not another answer


def test_a_run_with_a_teacher_trains_records_it_and_weight_0_changes_nothing(
        tmp_path, tiny_checkpoint):
    taught = train(config(tmp_path, str(tiny_checkpoint), name="t", temperature=2.0,
                          flip=True), progress=False)
    assert 0.0 <= taught.metrics["miou"] <= 1.0
    recipe = load_checkpoint(taught.checkpoint).meta.recipe
    assert recipe["distill"] == {"teacher": str(tiny_checkpoint), "weight": 1.0,
                                 "temperature": 2.0, "flip": True, "bf16": False}
    alone = load_checkpoint(train(config(tmp_path, name="a"), progress=False).checkpoint)
    zero = load_checkpoint(train(config(tmp_path, str(tiny_checkpoint), name="z", weight=0.0),
                                 progress=False).checkpoint)
    with_teacher = load_checkpoint(taught.checkpoint)
    for key, value in alone.state_dict.items():
        torch.testing.assert_close(zero.state_dict[key], value, atol=0, rtol=0)
    assert any(not torch.equal(with_teacher.state_dict[k], v)
               for k, v in alone.state_dict.items() if v.is_floating_point())


def test_a_teacher_that_does_not_fit_is_refused_by_name(tmp_path, tiny_checkpoint):
    payload = torch.load(tiny_checkpoint, weights_only=True)
    classes = list(payload["meta"]["classes"])
    other = tmp_path / "other-classes.pt"
    torch.save({**payload, "meta": {**payload["meta"], "classes": classes[:-1] + ["lava"]}},
               other)
    with pytest.raises(RtsegError, match=r"\[distill\] teacher .*lava.*same classes"):
        train(config(tmp_path, str(other)), progress=False)
    mean = tmp_path / "other-mean.pt"
    torch.save({**payload, "meta": {**payload["meta"], "mean": [0.0, 0.0, 0.0]}}, mean)
    with pytest.raises(RtsegError, match=r"normalised with mean \[0.0, 0.0, 0.0\]"):
        train(config(tmp_path, str(mean)), progress=False)
    with pytest.raises(RtsegError, match="temperature > 0"):
        train(config(tmp_path, str(tiny_checkpoint), temperature=0.0), progress=False)
    with pytest.raises(RtsegError, match="does not exist"):
        train(config(tmp_path, str(tmp_path / "missing.pt")), progress=False)
    assert not (tmp_path / "s.pt").exists()  # nothing was written by the refused runs


def test_a_recipe_reads_the_distill_section(tmp_path, tiny_checkpoint):
    from rtseg.config import load_train_config

    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[distill]\nteacher = "{tiny_checkpoint}"\nflip = true\n')
    cfg = load_train_config(recipe)
    assert cfg.distill == replace(DistillConfig(), teacher=str(tiny_checkpoint), flip=True)
    recipe.write_text('[distill]\nteachr = "x.pt"\n')
    with pytest.raises(RtsegError, match="teachr"):
        load_train_config(recipe)
