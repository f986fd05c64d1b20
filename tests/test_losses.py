import pytest
import torch
import torch.nn.functional as F

from rtseg.errors import RtsegError
from rtseg.training.losses import build_loss


def batch(classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 8, 8, generator=g)
    target = torch.randint(0, classes, (2, 8, 8), generator=g)
    target[0, 0, :4] = 255
    return logits, target


def test_ce_ignores_and_weights():
    logits, target = batch()
    assert build_loss("ce")(logits, target) == pytest.approx(
        float(F.cross_entropy(logits, target, ignore_index=255)))
    weighted = build_loss("ce", class_weights=[1.0, 0.0, 0.0])(logits, target)
    only0 = target.clone()
    only0[only0 != 0] = 255
    assert weighted == pytest.approx(float(F.cross_entropy(logits, only0, ignore_index=255)))


def test_ohem_keeps_the_hardest_pixels():
    logits, target = batch()
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = per_pixel[target != 255]
    assert build_loss("ohem", ohem_keep=1.0)(logits, target) == pytest.approx(
        float(valid.mean()))
    hardest = build_loss("ohem", ohem_keep=0.1)(logits, target)
    assert hardest == pytest.approx(float(valid.topk(int(valid.numel() * 0.1)).values.mean()))


def test_dice_is_zero_for_a_perfect_prediction_and_high_for_a_wrong_one():
    _, target = batch()
    perfect = F.one_hot(target.clamp(0, 2), 3).permute(0, 3, 1, 2).float() * 50
    assert float(build_loss("dice")(perfect, target)) < 1e-3
    wrong = perfect.roll(1, dims=1)
    assert float(build_loss("dice")(wrong, target)) > 0.9


def test_bce_for_single_channel_models():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 4, 4, generator=g)
    target = torch.randint(0, 2, (2, 4, 4), generator=g)
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    assert build_loss("bce")(logits, target) == pytest.approx(float(expected))
    with pytest.raises(RtsegError, match="single-channel"):
        build_loss("bce")(torch.randn(2, 3, 4, 4), target)
    with pytest.raises(RtsegError, match="unknown loss"):
        build_loss("focal")
