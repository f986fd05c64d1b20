"""Segmentation losses by name: ce, bce, dice, ce+dice, ohem, lovasz, ce+lovasz, ohem+lovasz.

All take logits (N, C, H, W) and targets (N, H, W) int64 with `ignore_index` for unlabelled
pixels, and return a scalar. `bce` is for single-channel binary models (C == 1): target 1 is
the positive class. `lovasz` is the Lovasz-softmax surrogate of the mean IoU over the
classes present in the batch (Berman et al., CVPR 2018; segmentation-models-pytorch's
implementation), a fine-tuning loss that targets the metric itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from rtseg.errors import RtsegError

LOSSES = ("ce", "bce", "dice", "ce+dice", "ohem", "lovasz", "ce+lovasz", "ohem+lovasz")
# Lovasz-softmax sorts every pixel's error once per class: on 8 x 448 x 608 pixels that is
# ~4-6 s a step on 2 CPU cores, on every other row and column (a quarter of the pixels) ~0.65 s.
LOVASZ_STRIDE = 2


def build_loss(name: str, ignore_index: int = 255, class_weights: Sequence[float] | None = None,
               ohem_keep: float = 0.25, lovasz_stride: int = LOVASZ_STRIDE,
               ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss `name` as f(logits (N,C,H,W), target (N,H,W) int64) -> scalar tensor.
    The Lovasz term sees every `lovasz_stride`-th row and column; class weights apply to the
    cross-entropy terms only."""
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None

    def ce(logits, target):
        w = weight.to(logits.device) if weight is not None else None
        return F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index)

    table = {
        "ce": ce,
        "bce": lambda logits, target: binary_ce(logits, target, ignore_index),
        "dice": lambda logits, target: dice_loss(logits, target, ignore_index),
        "ce+dice": lambda logits, target: ce(logits, target) + dice_loss(logits, target,
                                                                         ignore_index),
        "ohem": lambda logits, target: ohem_ce(logits, target, ignore_index, ohem_keep, weight),
    }
    if name not in LOSSES:
        raise RtsegError(f"unknown loss {name!r}: use one of {', '.join(LOSSES)}")
    if name.endswith("lovasz"):  # segmentation-models-pytorch is imported only for these
        first = name.removesuffix("lovasz").removesuffix("+")
        return _sum(table.get(first), lovasz_softmax(ignore_index, lovasz_stride))
    return table[name]


def _sum(first: Callable | None, second: Callable) -> Callable:
    """f(logits, target) = first(logits, target) + second(logits, target) (second alone
    without a first)."""
    if first is None:
        return second
    return lambda logits, target: first(logits, target) + second(logits, target)


def lovasz_softmax(ignore_index: int, stride: int) -> Callable:
    """f(logits (N,C,H,W), target (N,H,W) int64): the Lovasz-softmax loss over the pixels of
    every `stride`-th row and column, ignored pixels left out."""
    from segmentation_models_pytorch.losses import LovaszLoss

    loss = LovaszLoss("multiclass", ignore_index=ignore_index)

    def f(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            raise RtsegError("loss lovasz needs a multi-class model; for a binary one use bce")
        return loss(logits[:, :, ::stride, ::stride], target[:, ::stride, ::stride])

    return f


def with_boosters(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  aux_weight: float) -> Callable:
    """f(outputs, target): `loss_fn` on float32 logits (N, C, H, W), or, for a model that
    returns (logits, *booster_logits) while training, loss(logits) + aux_weight x the sum of
    the boosters' losses."""

    def total(outputs, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return loss_fn(outputs.float(), target)
        main, *boosters = outputs
        loss = loss_fn(main.float(), target)
        for logits in boosters:
            loss = loss + aux_weight * loss_fn(logits.float(), target)
        return loss

    return total


def binary_ce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """BCE-with-logits for (N, 1, H, W) logits against a 0/1 target (N, H, W)."""
    if logits.shape[1] != 1:
        raise RtsegError(f"loss bce needs a single-channel model (binary = true), "
                         f"got {logits.shape[1]} channels")
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[:, 0][valid], target[valid].float())


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
              eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes present in the batch; ignored pixels do not count."""
    valid = (target != ignore_index).unsqueeze(1).float()
    if logits.shape[1] == 1:
        probs = torch.sigmoid(logits)
        onehot = (target == 1).unsqueeze(1).float()
    else:
        probs = logits.softmax(1)
        onehot = F.one_hot(target.clamp(0, logits.shape[1] - 1), logits.shape[1])
        onehot = onehot.permute(0, 3, 1, 2).float()
    probs, onehot = probs * valid, onehot * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    present = onehot.sum(dims) > 0
    return 1.0 - (dice[present].mean() if present.any() else dice.mean())


def ohem_ce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int, keep: float,
            weight: torch.Tensor | None = None) -> torch.Tensor:
    """Online hard example mining: mean CE over the hardest `keep` fraction of valid pixels."""
    w = weight.to(logits.device) if weight is not None else None
    per_pixel = F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index,
                                reduction="none").flatten()
    valid = per_pixel[(target != ignore_index).flatten()]
    if valid.numel() == 0:
        return logits.sum() * 0.0
    k = max(1, int(valid.numel() * keep))
    return valid.topk(k).values.mean()
