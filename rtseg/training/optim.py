"""Optimisers and learning-rate schedules by name; frozen backbones for fine-tuning."""

from __future__ import annotations

import math

import torch
from torch import nn

from rtseg.errors import RtsegError
from rtseg.models import backbone_of

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("poly", "cosine", "constant")


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """Optimizer over the parameters that require gradients (a frozen backbone is left out)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=momentum > 0)
    raise RtsegError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


def build_schedule(optimizer: torch.optim.Optimizer, name: str, steps: int,
                   warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup` steps, then poly (power 0.9), cosine or constant to `steps`."""
    if name not in SCHEDULES:
        raise RtsegError(f"unknown schedule {name!r}: use one of {', '.join(SCHEDULES)}")
    warmup = max(1, warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        if name == "poly":
            return (1.0 - progress) ** 0.9
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def freeze(model: nn.Module, backbone: bool, batchnorm: bool) -> None:
    """Stop gradients into the backbone; keep BatchNorm layers in eval mode (see `train_mode`)."""
    if backbone:
        for p in backbone_of(model).parameters():
            p.requires_grad_(False)
    model._rtseg_freeze_bn = batchnorm  # read by train_mode()


def train_mode(model: nn.Module) -> None:
    """model.train(), except BatchNorm layers when frozen (fine-tuning with small batches)."""
    model.train()
    if getattr(model, "_rtseg_freeze_bn", False):
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
