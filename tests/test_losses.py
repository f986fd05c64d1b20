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


def test_lovasz_is_the_mean_iou_surrogate_and_can_be_added_to_ce():
    logits, target = batch(seed=2)
    # On hard (one-hot) predictions Lovasz-softmax is exactly 1 - mean IoU of the classes
    # present: check it against the IoU counted by hand.
    hard = F.one_hot(target.roll(1, dims=2).clamp(0, 2), 3).permute(0, 3, 1, 2).float() * 1e4
    pred = hard.argmax(1)
    valid = target != 255
    ious = []
    for c in range(3):
        t, p = (target == c) & valid, (pred == c) & valid
        if t.any():
            ious.append(float((t & p).sum()) / float((t | p).sum()))
    lovasz = build_loss("lovasz", lovasz_stride=1)
    assert float(lovasz(hard, target)) == pytest.approx(1 - sum(ious) / len(ious), abs=1e-5)
    assert float(lovasz(F.one_hot(target.clamp(0, 2), 3).permute(0, 3, 1, 2).float() * 1e4,
                        target)) == pytest.approx(0.0, abs=1e-5)
    # The sums are their parts; the stride keeps every other row and column.
    both = build_loss("ce+lovasz", lovasz_stride=1)(logits, target)
    assert float(both) == pytest.approx(float(build_loss("ce")(logits, target))
                                        + float(lovasz(logits, target)), rel=1e-6)
    ohem = build_loss("ohem+lovasz", ohem_keep=0.5, lovasz_stride=2)(logits, target)
    assert float(ohem) == pytest.approx(
        float(build_loss("ohem", ohem_keep=0.5)(logits, target))
        + float(lovasz(logits[:, :, ::2, ::2], target[:, ::2, ::2])), rel=1e-6)
    logits.requires_grad_(True)
    build_loss("lovasz")(logits, target).backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(RtsegError, match="multi-class"):
        build_loss("lovasz")(torch.randn(2, 1, 4, 4), target[:, :4, :4].clamp(0, 1))
