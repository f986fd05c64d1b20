"""The minimal training loop: CE loss, AdamW, warm-up + poly schedule, best-by-mIoU checkpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from rtseg.checkpoint import CheckpointMeta, save_checkpoint
from rtseg.config import TrainConfig
from rtseg.data.datasets import DatasetInfo, make_datasets
from rtseg.device import pick_device
from rtseg.models import build_model
from rtseg.training.evaluate import evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the best checkpoint went and its validation metrics."""

    checkpoint: Path
    best_step: int
    metrics: dict
    seconds: float


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Run a recipe to the end; returns the best checkpoint (by val mIoU) and its metrics."""
    torch.manual_seed(cfg.train.seed)
    device = pick_device(cfg.train.device)
    train_set, val_set, info = make_datasets(cfg.data)
    model = build_model(cfg.model.name, len(info.classes), cfg.model.backbone_weights,
                        **cfg.model.kwargs).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr,
                                  weight_decay=cfg.train.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_poly(cfg))
    loss_fn = nn.CrossEntropyLoss(ignore_index=info.ignore_index)
    val_loader = DataLoader(val_set, batch_size=cfg.train.batch_size, num_workers=0)
    meta = _meta(cfg, info)
    best = (-1.0, 0, {})
    start = time.perf_counter()
    bar = _progress(cfg.train.steps, progress)
    batches = _endless(train_set, cfg)
    for step, (x, y) in enumerate(batches, start=1):
        model.train()
        loss = loss_fn(model(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{_rate(bar, cfg):.1f}")
        bar.update()
        if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
            recalibrate_batchnorm(model, batches, cfg.train.bn_batches, device)
            metrics = _validate(model, val_loader, info, meta, device)
            log.info("step %d: val mIoU %.4f drivable IoU %.4f", step, metrics["miou"],
                     metrics["drivable_iou"])
            if metrics["miou"] > best[0]:
                best = (metrics["miou"], step, metrics)
                _save(cfg, model, meta, metrics, step)
        if step >= cfg.train.steps:
            break
    bar.close()
    return TrainResult(Path(cfg.output.path), best[1], best[2], time.perf_counter() - start)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterator, count: int, device) -> None:
    """Re-estimate BatchNorm running statistics for the current weights ("precise BN").

    Running averages with torchvision's momentum (0.01 for MobileNetV3) lag far behind
    weights that change fast, as in training from scratch, and eval-mode outputs then
    collapse. This resets them and averages `count` training batches (N,3,H,W) exactly.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or count <= 0:
        return
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    model.train()
    for _, (x, _) in zip(range(count), batches):
        model(x.to(device))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum


def _validate(model, loader, info: DatasetInfo, meta: CheckpointMeta, device) -> dict:
    return evaluate(model, loader, info.classes, meta.drivable_ids, info.ignore_index, device)


def _save(cfg: TrainConfig, model: nn.Module, meta: CheckpointMeta, metrics: dict,
          step: int) -> None:
    from dataclasses import replace

    meta = replace(meta, metrics={**metrics, "step": step})
    save_checkpoint(cfg.output.path, model, meta, half=cfg.output.half)


def _meta(cfg: TrainConfig, info: DatasetInfo) -> CheckpointMeta:
    return CheckpointMeta(
        model=cfg.model.name, model_kwargs=dict(cfg.model.kwargs), classes=info.classes,
        drivable=info.drivable, input_size=(cfg.data.height, cfg.data.width),
        mean=info.mean, std=info.std, ignore_index=info.ignore_index, recipe=cfg.as_dict(),
    )


def _endless(dataset, cfg: TrainConfig) -> Iterator:
    """Batches of (N,3,H,W) float, (N,H,W) int64 forever, reshuffled each pass."""
    generator = torch.Generator().manual_seed(cfg.train.seed)
    while True:
        loader = DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True,
                            drop_last=True, num_workers=cfg.train.workers, generator=generator,
                            persistent_workers=False)
        yield from loader


def _warmup_poly(cfg: TrainConfig):
    steps, warmup = cfg.train.steps, max(1, cfg.train.warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1.0 - (step - warmup) / max(1, steps - warmup)) ** 0.9

    return factor


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="train", unit="step", disable=not enabled, dynamic_ncols=True)


def _rate(bar, cfg: TrainConfig) -> float:
    elapsed = bar.format_dict.get("elapsed") or 0.0
    return (bar.n + 1) * cfg.train.batch_size / elapsed if elapsed else 0.0
