"""Knowledge distillation from a teacher checkpoint (Hinton et al., 2015), per pixel.

The teacher is any rtseg checkpoint with the student's classes and input normalisation (a
bigger model, or the student's own earlier weights with a mirrored second view): frozen, in
eval mode, it sees the student's training batch, and the student is pulled towards its
softened class probabilities on every pixel, labelled or not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.checkpoint import load_checkpoint
from rtseg.config import DistillConfig
from rtseg.data.base import DatasetInfo
from rtseg.errors import RtsegError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Teacher:
    """A frozen model and how its targets are made (see `DistillConfig`)."""

    net: nn.Module
    weight: float
    temperature: float
    flip: bool
    bf16: bool = False

    @torch.no_grad()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) normalised -> (N, C, H, W) float32 softmax(logits / T), the mean over
        x and its mirror when `flip`."""
        views = torch.cat([x, x.flip(-1)]) if self.flip else x
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.net(views)  # in eval mode: no booster logits
        p = (logits.float() / self.temperature).softmax(1)
        if self.flip:
            p = 0.5 * (p[: x.shape[0]] + p[x.shape[0]:].flip(-1))
        return p

    def loss(self, x: torch.Tensor, outputs) -> torch.Tensor:
        """weight x T^2 x mean over pixels of KL(teacher || student) for the student's main
        logits (N, C, H, W) (`outputs` may be (logits, *boosters) while training)."""
        logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return self.weight * distill_loss(logits, self.probs(x), self.temperature)


def distill_loss(logits: torch.Tensor, target: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """T^2 x the mean over pixels of KL(target || softmax(logits / T)); logits (N, C, H, W),
    target (N, C, H, W) probabilities summing to 1 over C. Zero when they agree; the T^2
    keeps the gradient's scale independent of T."""
    if logits.shape != target.shape:
        raise RtsegError(f"distillation: the student's logits {tuple(logits.shape)} and the "
                         f"teacher's {tuple(target.shape)} differ; both must output the input "
                         "size with one channel per class")
    log_q = F.log_softmax(logits.float() / temperature, dim=1)
    kl = F.kl_div(log_q, target, reduction="none").sum(1)
    return kl.mean() * temperature ** 2


def build_teacher(cfg: DistillConfig, info: DatasetInfo, binary: bool,
                  device: torch.device, channels_last: bool) -> Teacher | None:
    """The frozen teacher of `[distill]` on `device` (None without one); an RtsegError that
    names the mismatch when its classes or normalisation are not the student's."""
    if not cfg.teacher:
        return None
    if cfg.weight < 0 or cfg.temperature <= 0:
        raise RtsegError(f"[distill] weight must be >= 0 and temperature > 0, got weight "
                         f"{cfg.weight} and temperature {cfg.temperature}")
    if binary:
        raise RtsegError("[distill] needs a multi-class student (one channel per class); "
                         "a binary model trains without a teacher")
    ckpt = load_checkpoint(cfg.teacher)
    _check_match(cfg.teacher, ckpt.meta, info)
    net = ckpt.build(device)
    for p in net.parameters():
        p.requires_grad_(False)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    log.info("[distill] teacher %s (%s), weight %g, temperature %g, flip %s, bf16 %s",
             cfg.teacher, ckpt.short_id, cfg.weight, cfg.temperature, cfg.flip, cfg.bf16)
    return Teacher(net, cfg.weight, cfg.temperature, cfg.flip, cfg.bf16)


def _check_match(path: str, meta, info: DatasetInfo) -> None:
    """The teacher must predict the student's classes from identically normalised images."""
    if meta.binary or tuple(meta.classes) != tuple(info.classes):
        raise RtsegError(f"[distill] teacher {path} predicts {list(meta.classes)}"
                         f"{' (binary)' if meta.binary else ''}, the student's data set has "
                         f"{list(info.classes)}; use a teacher trained on the same classes")
    if not (_close(meta.mean, info.mean) and _close(meta.std, info.std)):
        raise RtsegError(f"[distill] teacher {path} expects images normalised with mean "
                         f"{list(meta.mean)} / std {list(meta.std)}, the student's data with "
                         f"{list(info.mean)} / {list(info.std)}; use a teacher trained on "
                         "the same data set")


def _close(a, b) -> bool:
    return len(a) == len(b) and all(abs(float(u) - float(v)) < 1e-6 for u, v in zip(a, b))
