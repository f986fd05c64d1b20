"""Paired (image, mask) transforms for training and evaluation, on torchvision.transforms.v2.

Images arrive as numpy `(H, W, 3) uint8 RGB`, masks as numpy `(H, W) uint8` class indices with
unlabelled pixels at `ignore_index`. Both are wrapped as `tv_tensors.Image` / `tv_tensors.Mask`,
so every geometric op draws one set of random parameters and applies it to both: bilinear for
the image, nearest for the mask (never an interpolated class value), fill 0 for the image and
`ignore_index` for the mask. The geometric ops run on uint8, where the channels-last resize is
faster than on float32; the image turns into [0, 1] floats just before the colour ops, which
torchvision runs faster on float32 (its uint8 kernels convert internally, per op). Figures:
benchmarks/transform_dtypes.py. All randomness comes from torch's global generator
(`torch.manual_seed`).

Scale rule (training). An `(H, W)` image and an `(h, w)` crop give the base scale
`b = max(h / H, w / W)`: the smallest resize of the image that covers the crop, so at scale 1.0
one side equals the crop and the other is at least as long (360x480 -> 352x480: b = 1.0).
Each sample draws `s ~ U(aug.scale)` and is resized to `(round(H * b * s), round(W * b * s))`;
a random `(h, w)` crop follows, padded (0 / ignore_index) where `s < 1` leaves it too small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from rtseg.config import AugmentConfig

BLUR_KERNEL = 7
BLUR_SIGMA = (0.1, 1.5)

PairFn = Callable[[np.ndarray, np.ndarray], tuple[Tensor, Tensor]]


class _Resize(v2.Transform):
    """Resize images bilinearly (antialiased) and masks nearest-exact to `size` (h, w).

    Nearest-exact samples the source pixel whose centre lies under the output pixel's centre,
    the same geometry as the bilinear image resize, so labels do not drift by half a pixel.
    """

    def __init__(self, size: Sequence[int]) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"size": list(self.size)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            mode = InterpolationMode.NEAREST_EXACT
            return self._call_kernel(F.resize, inpt, params["size"], interpolation=mode)
        return self._call_kernel(F.resize, inpt, params["size"],
                                 interpolation=InterpolationMode.BILINEAR, antialias=True)


class _RandomScale(_Resize):
    """Resize by `b * s` with `b = max(h / H, w / W)` (cover the crop) and `s ~ U(scale)`."""

    def __init__(self, crop: Sequence[int], scale: Sequence[float]) -> None:
        super().__init__(crop)
        self.scale = (float(scale[0]), float(scale[1]))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        image = next(x for x in flat_inputs if isinstance(x, tv_tensors.Image))
        height, width = F.get_size(image)
        s = float(torch.empty(()).uniform_(*self.scale))
        factor = max(self.size[0] / height, self.size[1] / width) * s
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}


class PairTransform:
    """`f(image (H, W, 3) uint8, mask (H, W) uint8) -> (image (3, h, w) float32, mask int64)`.

    `ops` is a v2 pipeline run on the (Image, Mask) pair; with `mask_ops=False` it sees the
    image alone and the mask comes back unchanged at (H, W). A top-level class (not a closure)
    so DataLoader workers can pickle it under any start method.
    """

    def __init__(self, ops: v2.Transform, mask_ops: bool = True,
                 mask_dtype: torch.dtype = torch.uint8) -> None:
        self.ops = ops
        self.mask_ops = mask_ops
        self.mask_dtype = mask_dtype

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[Tensor, Tensor]:
        _check_pair(image, mask)
        img = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        if not self.mask_ops:
            return self.ops(img).as_subclass(Tensor), torch.from_numpy(mask).long()
        msk = tv_tensors.Mask(torch.from_numpy(mask).to(self.mask_dtype))
        img, msk = self.ops(img, msk)
        return img.as_subclass(Tensor), msk.as_subclass(Tensor).long()

    def __repr__(self) -> str:
        return f"PairTransform(mask_ops={self.mask_ops}, ops={self.ops!r})"


def train_transform(aug: AugmentConfig, size: tuple[int, int], mean: Sequence[float],
                    std: Sequence[float], ignore_index: int = 255) -> PairFn:
    """Training augmentation -> `f(image, mask)`.

    In: image `(H, W, 3) uint8 RGB`, mask `(H, W) uint8`. Out: image `(3, h, w) float32`
    normalised, mask `(h, w) int64` holding only input values or `ignore_index`; `(h, w) = size`.
    Order: random scale (module docstring) -> random crop (pad 0 / ignore) -> hflip ->
    rotation (fill 0 / ignore), all on uint8 -> to [0, 1] floats -> ColorJitter -> Gaussian
    blur (p = aug.blur) -> Gaussian noise (std aug.noise, clamped to [0, 1]) -> Normalize.
    Ops whose strength is 0 are left out. `aug.enabled=False`: plain resize to `size` (aspect
    not kept) + Normalize.
    """
    mask_dtype = torch.uint8 if 0 <= ignore_index <= 255 else torch.int64
    if not aug.enabled:
        return PairTransform(v2.Compose([_Resize(size), *_to_float(mean, std)]),
                             mask_dtype=mask_dtype)
    ops = [*_geometric(aug, size, ignore_index), v2.ToDtype(torch.float32, scale=True),
           *_photometric(aug), v2.Normalize(mean=list(mean), std=list(std))]
    return PairTransform(v2.Compose(ops), mask_dtype=mask_dtype)


def eval_transform(size: tuple[int, int] | None, mean: Sequence[float],
                   std: Sequence[float]) -> PairFn:
    """Evaluation preprocessing -> `f(image, mask)`.

    Out: image `(3, h, w) float32` resized to `size` (bilinear, antialiased; None keeps
    `(H, W)`) and normalised; mask `(H, W) int64` unchanged, since metrics are computed at
    label resolution after upsampling the logits.
    """
    ops = [] if size is None else [_Resize(size)]
    return PairTransform(v2.Compose([*ops, *_to_float(mean, std)]), mask_ops=False)


class PairDataset(Dataset):
    """A SampleSet (`len()`, `load(i) -> (image, mask)`) with a pair transform applied.

    Item: whatever `transform` returns, e.g. (image (3, h, w) float32, mask (h, w) int64).
    """

    def __init__(self, samples, transform: PairFn) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = self.samples.load(index)
        return self.transform(image, mask)


def _geometric(aug: AugmentConfig, size: tuple[int, int], ignore_index: int) -> list:
    """Scale, crop, flip, rotate: one draw per op, applied to image and mask alike."""
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}
    ops = [_RandomScale(size, aug.scale),
           v2.RandomCrop(size, pad_if_needed=True, fill=fill, padding_mode="constant")]
    if aug.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(p=aug.hflip))
    if aug.rotate > 0:
        ops.append(v2.RandomRotation(aug.rotate, interpolation=InterpolationMode.BILINEAR,
                                     fill=fill))
    return ops


def _photometric(aug: AugmentConfig) -> list:
    """ColorJitter, random blur, noise on the [0, 1] float image (masks pass through)."""
    ops = []
    if max(aug.brightness, aug.contrast, aug.saturation, aug.hue) > 0:
        ops.append(v2.ColorJitter(brightness=aug.brightness, contrast=aug.contrast,
                                  saturation=aug.saturation, hue=aug.hue))
    if aug.blur > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(BLUR_KERNEL, BLUR_SIGMA)], p=aug.blur))
    if aug.noise > 0:
        ops.append(v2.GaussianNoise(sigma=aug.noise, clip=True))
    return ops


def _to_float(mean: Sequence[float], std: Sequence[float]) -> list:
    """uint8 -> float32 in [0, 1] -> (x - mean) / std, per channel."""
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def _check_pair(image: np.ndarray, mask: np.ndarray) -> None:
    """Reject anything but an (H, W, 3) uint8 image with an (H, W) mask."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}")
