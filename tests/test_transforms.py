"""Paired transforms: shapes, image/mask alignment under every geometric op, fills, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf
from torchvision.transforms.v2 import functional as F

from rtseg.config import AugmentConfig
from rtseg.data import IMAGENET_MEAN, IMAGENET_STD
from rtseg.data.base import DatasetInfo, SampleSet
from rtseg.data.transforms import PairDataset, eval_transform, train_transform

IGNORE = 255
MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
STD = np.asarray(IMAGENET_STD, dtype=np.float32)
# Far-apart colours, one per class, so argmin colour distance recovers the class.
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                    [255, 0, 255], [255, 255, 255], [0, 0, 0]], dtype=np.uint8)
# Geometry only: no colour change, blur or noise, so colours still name the class.
GEOMETRY = AugmentConfig(scale=(0.5, 2.0), hflip=0.5, rotate=20.0, brightness=0.0,
                         contrast=0.0, saturation=0.0, hue=0.0, blur=0.0, noise=0.0)
STILL = AugmentConfig(scale=(1.0, 1.0), hflip=0.0, rotate=0.0, brightness=0.0, contrast=0.0,
                      saturation=0.0, hue=0.0, blur=0.0, noise=0.0)


def block_mask(h: int, w: int, classes: int = 7, block: int = 8, seed: int = 0) -> np.ndarray:
    """(h, w) uint8 mask of random class blocks (asymmetric, so flips show), some ignore."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, classes, size=(-(-h // block), -(-w // block)), dtype=np.uint8)
    grid[0, 0] = IGNORE
    return np.kron(grid, np.ones((block, block), dtype=np.uint8))[:h, :w]


def paint(mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 image whose colour encodes the class (mod 8); ignore pixels are grey."""
    image = np.full((*mask.shape, 3), 128, dtype=np.uint8)
    valid = mask != IGNORE
    image[valid] = PALETTE[mask[valid] % len(PALETTE)]
    return image


def unnormalise(image: torch.Tensor) -> np.ndarray:
    """(3, h, w) normalised float32 -> (h, w, 3) floats in [0, 255]."""
    x = image.numpy().transpose(1, 2, 0)
    return (x * STD + MEAN) * 255.0


def decode(image: torch.Tensor) -> np.ndarray:
    """Class of the nearest palette colour per pixel: (h, w) int64."""
    x = unnormalise(image)
    dist = ((x[:, :, None, :] - PALETTE[None, None].astype(np.float32)) ** 2).sum(-1)
    return dist.argmin(-1)


def interior(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """(h, w) bool: labelled pixels whose (2r+1)^2 neighbourhood holds a single class."""
    m = mask.float()[None, None]
    k = 2 * radius + 1
    hi = tnf.max_pool2d(m, k, stride=1, padding=radius)
    lo = -tnf.max_pool2d(-m, k, stride=1, padding=radius)
    return ((hi == lo)[0, 0]) & (mask != IGNORE)


def make(aug: AugmentConfig, size=(48, 64)):
    return train_transform(aug, size, IMAGENET_MEAN, IMAGENET_STD, ignore_index=IGNORE)


@pytest.mark.parametrize("shape", [(60, 80), (30, 40), (120, 70)])
def test_train_output_shapes_and_dtypes(shape):
    mask = block_mask(*shape)
    aug = AugmentConfig(rotate=10.0, hue=0.05, blur=0.5, noise=0.05)
    image, target = make(aug, (48, 64))(paint(mask), mask)
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert target.shape == (48, 64) and target.dtype == torch.int64
    assert type(image) is torch.Tensor and type(target) is torch.Tensor


def test_image_and_mask_stay_aligned_under_geometry():
    mask = block_mask(72, 96, block=20)
    fn = make(GEOMETRY)
    checked = 0
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = fn(paint(mask), mask)
        keep = interior(target)
        assert keep.sum() > 100
        agree = (torch.from_numpy(decode(image)) == target)[keep].float().mean()
        assert agree > 0.99, f"seed {seed}: only {agree:.4f} of interior pixels agree"
        checked += 1
    assert checked == 12


def test_mask_keeps_only_original_values_or_ignore():
    rng = np.random.default_rng(1)
    mask = rng.choice(np.array([0, 3, 7], dtype=np.uint8), size=(40, 56))
    fn = make(GEOMETRY, (32, 48))
    torch.manual_seed(0)
    seen = set()
    for _ in range(10):
        _, target = fn(paint(mask), mask)
        seen |= set(target.unique().tolist())
    assert seen <= {0, 3, 7, IGNORE}
    assert {0, 3, 7} <= seen


def test_padding_is_ignore_in_mask_and_zero_in_image():
    mask = np.ones((48, 64), dtype=np.uint8)
    aug = replace(STILL, scale=(0.5, 0.5))
    torch.manual_seed(0)
    image, target = make(aug, (48, 64))(paint(mask), mask)
    # base scale 1.0, s = 0.5: a 24x32 picture inside a 48x64 crop, the rest padding.
    assert int((target == 1).sum()) == 24 * 32
    assert int((target == IGNORE).sum()) == 48 * 64 - 24 * 32
    pad = (target == IGNORE).numpy()
    assert np.allclose(unnormalise(image)[pad], 0.0, atol=1e-3)


def test_rotation_fills_mask_with_ignore_and_image_with_zero():
    mask = np.zeros((64, 64), dtype=np.uint8)
    aug = replace(STILL, rotate=45.0)
    fn = make(aug, (64, 64))
    filled = []
    for seed in range(8):
        torch.manual_seed(seed)
        image, target = fn(paint(mask), mask)
        assert set(target.unique().tolist()) <= {0, IGNORE}
        filled.append(int((target == IGNORE).sum()))
        deep = interior(target.masked_fill(target == IGNORE, 1), radius=1) & (target == 1)
        assert np.allclose(unnormalise(image)[deep.numpy()], 0.0, atol=1e-3)
    assert sum(f > 0 for f in filled) >= 6
    assert max(filled) > 0.1 * 64 * 64


def test_flip_happens_at_about_the_given_probability():
    mask = np.zeros((8, 16), dtype=np.uint8)
    mask[:, 8:] = 1
    torch.manual_seed(0)
    for p in (0.0, 0.3, 1.0):
        fn = make(replace(STILL, hflip=p), (8, 16))
        flips = sum(int(fn(paint(mask), mask)[1][0, 0] == 1) for _ in range(400))
        assert abs(flips / 400 - p) < 0.08, (p, flips)


def test_scale_one_covers_the_crop_exactly_on_one_side():
    # 100x200 image, 50x50 crop: base = max(50/100, 50/200) = 0.5 -> 50x100, height matches.
    mask = (np.arange(100, dtype=np.uint8) // 10)[:, None].repeat(200, axis=1)
    torch.manual_seed(0)
    _, target = make(STILL, (50, 50))(paint(mask), mask)
    assert (target != IGNORE).all()
    expected = torch.arange(10).repeat_interleave(5)[:, None].expand(50, 50)
    assert torch.equal(target, expected)


def test_same_seed_same_output_other_seed_other_output():
    mask = block_mask(60, 80)
    fn = make(AugmentConfig(rotate=15.0, hue=0.05, blur=0.5, noise=0.05), (48, 64))
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outs.append(fn(paint(mask), mask))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], outs[2][0])


def test_disabled_aug_is_a_plain_resize():
    mask = block_mask(64, 96, block=3)
    image = paint(mask)
    fn = make(AugmentConfig(enabled=False, rotate=30.0, noise=0.5), (32, 48))
    x1, y1 = fn(image, mask)
    x2, y2 = fn(image, mask)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # nearest-exact at a factor of 2 samples the source pixel under each output centre
    assert torch.equal(y1, torch.from_numpy(mask[1::2, 1::2]).long())
    ref = F.resize(torch.from_numpy(image).permute(2, 0, 1), [32, 48], antialias=True)
    ref = (ref.float() / 255 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert torch.allclose(x1, ref, atol=1e-5)


def test_noise_and_blur_change_the_image_within_range():
    mask = block_mask(48, 64, block=4)
    image = paint(mask)
    clean, _ = make(STILL)(image, mask)
    torch.manual_seed(0)
    noisy, _ = make(replace(STILL, noise=0.1))(image, mask)
    blurred, _ = make(replace(STILL, blur=1.0))(image, mask)
    raw = unnormalise(noisy) / 255
    assert raw.min() > -1e-4 and raw.max() < 1 + 1e-4
    assert 0.02 < np.abs(raw - unnormalise(clean) / 255).mean() < 0.1
    assert not torch.allclose(blurred, clean, atol=1e-3)


def test_eval_resizes_image_and_leaves_mask_untouched():
    mask = block_mask(60, 80)
    image = paint(mask)
    x, y = eval_transform((30, 40), IMAGENET_MEAN, IMAGENET_STD)(image, mask)
    assert x.shape == (3, 30, 40) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and torch.equal(y, torch.from_numpy(mask).long())


def test_normalisation_matches_formula():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    mask = np.zeros((20, 30), dtype=np.uint8)
    x, _ = eval_transform(None, IMAGENET_MEAN, IMAGENET_STD)(image, mask)
    expected = ((image / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    assert np.allclose(x.numpy(), expected, atol=1e-5)


def test_pair_dataset_applies_the_transform_to_each_sample():
    masks = [block_mask(40, 50, seed=s) for s in range(3)]
    info = DatasetInfo(classes=tuple(f"c{i}" for i in range(7)), drivable=("c0",))
    samples = SampleSet(info, ids=(0, 1, 2), names=("a", "b", "c"),
                        loader=lambda i: (paint(masks[i]), masks[i]))
    data = PairDataset(samples, eval_transform(None, IMAGENET_MEAN, IMAGENET_STD))
    assert len(data) == 3
    image, target = data[2]
    assert image.shape == (3, 40, 50)
    assert torch.equal(target, torch.from_numpy(masks[2]).long())


def test_rejects_mismatched_pair():
    with pytest.raises(ValueError, match="does not match"):
        make(STILL)(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), np.uint8))
