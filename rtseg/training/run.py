"""The parts of one training run, built once from the recipe and frozen: data, model,
optimisation, output paths. What changes as the run goes is its `Progress`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from rtseg.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from rtseg.config import TrainConfig
from rtseg.data.base import DatasetInfo, SampleSet
from rtseg.data.datasets import open_data
from rtseg.data.transforms import PairDataset, eval_transform, train_transform
from rtseg.device import cpu_has_bf16
from rtseg.errors import RtsegError
from rtseg.models import build_model
from rtseg.training import data as tdata
from rtseg.training.distill import Teacher, build_teacher
from rtseg.training.distributed import World, broadcast_buffers
from rtseg.training.logs import CsvLog, overlay_grid, plot_curves
from rtseg.training.losses import build_loss, with_boosters
from rtseg.training.optim import (
    build_optimizer,
    build_schedule,
    estimate_batchnorm,
    freeze_backbone,
)
from rtseg.training.progress import SELECTS, Progress
from rtseg.training.state import load_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes: the best checkpoint, the logs folder and last.pt in it."""

    best: Path
    logs: Path
    last: Path


@dataclass(frozen=True)
class RunData:
    """train_samples: key (epoch, i) -> (image (3, H, W) float32, mask (H, W) int64),
    augmented; val_samples.load(i) -> (image (H', W', 3) uint8 RGB, mask (H', W') uint8);
    val_set[i] -> (image (3, H, W) float32, mask (H', W') int64 at its own size)."""

    info: DatasetInfo
    train_samples: tdata.SeededSamples
    val_samples: SampleSet
    val_set: PairDataset
    steps_per_epoch: int  # full batches per rank


@dataclass(frozen=True)
class RunModel:
    """net: the model; wrapped: what a step calls (DistributedDataParallel around net under
    torchrun, else net itself); meta: the checkpoint's description, metrics left empty;
    ema: the moving average of net's weights ([train] ema > 0), else None."""

    net: nn.Module
    wrapped: nn.Module
    meta: CheckpointMeta
    freeze_bn: bool  # BatchNorm kept in eval mode while training (fine-tuning)
    ema: torch.optim.swa_utils.AveragedModel | None = None

    @property
    def kept(self) -> nn.Module:
        """The weights each round validates and saves: the average if there is one."""
        return self.ema.module if self.ema is not None else self.net


@dataclass(frozen=True)
class RunOptim:
    """loss_fn: (logits (N, C, H, W) float32, mask (N, H, W) int64) -> scalar tensor;
    scaler: None unless AMP on CUDA; a round is eval_every steps."""

    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    total_steps: int
    eval_every: int


@dataclass(frozen=True)
class RunParts:
    """Everything a run holds that does not change; csv is the log (rank 0, else None);
    teacher: the frozen model of `[distill]`, else None."""

    cfg: TrainConfig
    device: torch.device
    world: World
    paths: RunPaths
    data: RunData
    model: RunModel
    optim: RunOptim
    csv: CsvLog | None
    teacher: Teacher | None = None


def build_run(cfg: TrainConfig, device: torch.device, world: World,
              resume: bool) -> tuple[RunParts, Progress]:
    """The run's parts and its progress: zero, or (with `resume`) that of last.pt."""
    _check(cfg)
    cfg = fit_to_device(cfg, device)
    logs = cfg.output.logs_dir
    paths = RunPaths(best=cfg.output.path, logs=logs, last=logs / "last.pt")
    data = _build_data(cfg, world)
    model = _build_model(cfg, data.info, device, world)
    optim = _build_optim(cfg, data, model.net, device)
    teacher = build_teacher(cfg.distill, data.info, cfg.model.binary, device,
                            cfg.train.channels_last)
    csv = CsvLog(logs / "log.csv", resume=resume) if world.main else None
    parts = RunParts(cfg, device, world, paths, data, model, optim, csv, teacher)
    if not resume:
        return parts, Progress()
    counters = load_state(paths.last, model.net, optim.optimizer, optim.schedule, optim.scaler,
                          model.ema)
    return parts, Progress.from_counters(counters)


def _check(cfg: TrainConfig) -> None:
    if cfg.train.select not in SELECTS:
        raise RtsegError(f"[train] select must be {', '.join(SELECTS[:-1])} or {SELECTS[-1]}, "
                         f"got {cfg.train.select!r}")
    if not 0.0 <= cfg.train.ema < 1.0:
        raise RtsegError(f"[train] ema is the decay of the weights' moving average, in [0, 1) "
                         f"(e.g. 0.995; 0 turns it off), got {cfg.train.ema}")
    if cfg.model.binary != (cfg.train.loss == "bce"):
        raise RtsegError("a binary model ([model] binary = true) trains with loss = \"bce\", "
                         "and loss bce needs a binary model")


def fit_to_device(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """`cfg` without `cpu_bf16` on a CPU that would only emulate BF16 (said in the log); the
    checkpoint's recipe then records the FP32 run that took place."""
    if not cfg.train.cpu_bf16 or device.type != "cpu" or cpu_has_bf16():
        return cfg
    log.warning("[train] cpu_bf16 = true, but this CPU has no BF16 instructions (AVX512-BF16 "
                "or AMX): torch would emulate BF16 autocast, about 9x slower than FP32 on an "
                "AVX2 CPU. Training in FP32 (set cpu_bf16 = false to silence this)")
    return replace(cfg, train=replace(cfg.train, cpu_bf16=False))


def _build_data(cfg: TrainConfig, world: World) -> RunData:
    size = (cfg.data.height, cfg.data.width)
    if size[0] % 32 or size[1] % 32:
        raise RtsegError(f"[data] height and width must be multiples of 32, got {size}")
    train = open_data(cfg.data, "train")
    info = train.info
    if cfg.model.binary and len(info.classes) != 2:
        raise RtsegError(f"a binary model needs a two-class data set, got {info.classes}")
    crop = tuple(cfg.augment.crop) if cfg.augment.crop else size
    if crop[0] % 32 or crop[1] % 32:
        raise RtsegError(f"[augment] crop must be multiples of 32, got {crop}")
    transform = train_transform(cfg.augment, crop, info.mean, info.std, info.ignore_index)
    samples = tdata.SeededSamples(PairDataset(train, transform), cfg.train.seed)
    batch = cfg.train.batch_size
    per_epoch = tdata.steps_per_epoch(len(samples), batch, world)
    if per_epoch < 1:
        raise RtsegError(f"{len(samples)} training samples make no full batch of {batch} "
                         "per process: lower [train] batch_size")
    val = open_data(cfg.data, "val")
    val_set = PairDataset(val, eval_transform(size, info.mean, info.std))
    return RunData(info, samples, val, val_set, per_epoch)


def _build_model(cfg: TrainConfig, info: DatasetInfo, device: torch.device,
                 world: World) -> RunModel:
    torch.manual_seed(cfg.train.seed)
    channels = 1 if cfg.model.binary else len(info.classes)
    net = build_model(cfg.model.name, channels, cfg.model.backbone_weights,
                      **cfg.model.kwargs).to(device)
    if cfg.model.init:
        init_from_checkpoint(net, cfg, info)
    if cfg.train.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if cfg.train.freeze_backbone:
        freeze_backbone(net)
    wrapped = net
    if world.size > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    meta = CheckpointMeta(
        model=cfg.model.name, model_kwargs=dict(cfg.model.kwargs), classes=info.classes,
        drivable=info.drivable, input_size=(cfg.data.height, cfg.data.width), mean=info.mean,
        std=info.std, ignore_index=info.ignore_index, binary=cfg.model.binary,
        palette=tuple(tuple(int(v) for v in c) for c in info.palette_array()),
        recipe=cfg.as_dict(), notes=cfg.output.notes)
    return RunModel(net, wrapped, meta, cfg.train.freeze_bn, _moving_average(net, cfg))


def _moving_average(net: nn.Module,
                    cfg: TrainConfig) -> torch.optim.swa_utils.AveragedModel | None:
    """torch's AveragedModel of `net` with EMA decay [train] ema (None when 0). Its BN
    statistics are not averaged: each round re-estimates them for the averaged weights."""
    if cfg.train.ema <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema),
                         use_buffers=False)


def init_from_checkpoint(net: nn.Module, cfg: TrainConfig, info: DatasetInfo) -> None:
    """Load the weights of the checkpoint `[model] init` into `net`, after checking that
    it is the same model with the same classes and output channels. Its kwargs may differ
    where they only add modules (LR-ASPP's `fine` skip): every tensor of the checkpoint
    must then load with its shape, and the added ones keep their initial values."""
    ckpt = load_checkpoint(cfg.model.init)
    theirs = (ckpt.meta.model, tuple(ckpt.meta.classes), ckpt.meta.binary)
    ours = (cfg.model.name, tuple(info.classes), cfg.model.binary)
    if theirs != ours:
        raise RtsegError(
            f"[model] init {cfg.model.init}: the checkpoint is (model, classes, binary) = "
            f"{theirs}, the recipe wants {ours}; start from a checkpoint of the same model "
            "and data set, or drop `init` to train from scratch")
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    if dict(ckpt.meta.model_kwargs) == dict(cfg.model.kwargs):
        net.load_state_dict(state)
        return
    _grow_from(net, state, cfg, dict(ckpt.meta.model_kwargs))


def _grow_from(net: nn.Module, state: dict, cfg: TrainConfig, their_kwargs: dict) -> None:
    """Load `state` (a model built with `their_kwargs`) into `net`, which may only add
    tensors to it; said in the log, an RtsegError naming the tensors otherwise."""
    ours = net.state_dict()
    unexpected = [k for k in state if k not in ours]
    reshaped = [k for k in state if k in ours and ours[k].shape != state[k].shape]
    if unexpected or reshaped:
        raise RtsegError(
            f"[model] init {cfg.model.init}: built with kwargs {their_kwargs}, the recipe "
            f"has {dict(cfg.model.kwargs)}, and its weights do not fit this model (not in "
            f"it: {unexpected[:4]}, other shape: {reshaped[:4]}); use the checkpoint's "
            "kwargs, or drop `init` to train from scratch")
    net.load_state_dict(state, strict=False)
    fresh = sorted(k for k in ours if k not in state)
    log.info("[model] init %s (kwargs %s): loaded %d tensors; new in this model, starting "
             "from their initial values: %s", cfg.model.init, their_kwargs, len(state),
             ", ".join(fresh))


def _build_optim(cfg: TrainConfig, data: RunData, net: nn.Module,
                 device: torch.device) -> RunOptim:
    t = cfg.train
    total = t.epochs * data.steps_per_epoch if t.epochs > 0 else t.steps
    every = data.steps_per_epoch if t.epochs > 0 else max(1, t.eval_every)
    optimizer = build_optimizer(net, t.optimizer, t.lr, t.weight_decay, t.momentum)
    schedule = build_schedule(optimizer, t.schedule, total, t.warmup_steps)
    scaler = torch.amp.GradScaler("cuda") if t.amp and device.type == "cuda" else None
    loss_fn = with_boosters(build_loss(t.loss, data.info.ignore_index, t.class_weights,
                                       t.ohem_keep), t.aux_weight)
    return RunOptim(optimizer, schedule, scaler, loss_fn, total, every)


def train_batches(parts: RunParts, step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches (N, 3, H, W) float32, (N, H, W) int64 from `step` on, epoch after
    epoch: the same ones an uninterrupted run sees from there."""
    epoch, skip = divmod(step, parts.data.steps_per_epoch)
    t = parts.cfg.train
    while True:
        yield from tdata.epoch_loader(parts.data.train_samples, t.batch_size, epoch,
                                      parts.world, t.workers, skip)
        epoch, skip = epoch + 1, 0


def val_batches(parts: RunParts):
    """This rank's share of the validation set, batch size 1 (see `RunData.val_set`)."""
    return tdata.val_loader(parts.data.val_set, parts.world, parts.cfg.train.workers)


def recalibrate_batchnorm(parts: RunParts, step: int, net: nn.Module) -> None:
    """Precise BN for `net` (the run's model or its average) on `bn_batches` training
    batches of their own epoch (drawn from `step`), then rank 0's statistics on every
    rank. See `estimate_batchnorm` for why."""
    t = parts.cfg.train
    loader = tdata.epoch_loader(parts.data.train_samples, t.batch_size, 10_000_000 + step,
                                parts.world, 0)
    if estimate_batchnorm(net, loader, t.bn_batches, parts.device):
        broadcast_buffers(net, parts.world)


def save_best(parts: RunParts, metrics: dict, step: int) -> None:
    """Write the best checkpoint with its metrics and step (rank 0)."""
    meta = replace(parts.model.meta, metrics={**metrics, "step": step})
    save_checkpoint(parts.paths.best, parts.model.kept, meta, half=parts.cfg.output.half)


def write_round_logs(parts: RunParts, metrics: dict, step: int, train_summary: dict) -> None:
    """CSV row, curves PNG and an overlay grid of the first val images (rank 0).

    train_summary: `RoundTotals.summary()` of the round just ended.
    """
    row = {"step": step, "epoch": round(step / parts.data.steps_per_epoch, 3),
           **train_summary, "val_loss": metrics["loss"], "val_miou": metrics["miou"],
           "val_drivable_iou": metrics["drivable_iou"],
           "val_pixel_accuracy": metrics["pixel_accuracy"],
           **({"val_miou_raw": metrics["raw_miou"]} if "raw_miou" in metrics else {}),
           "lr": parts.optim.optimizer.param_groups[0]["lr"]}
    parts.csv.append(row)
    plot_curves(parts.csv.rows, parts.paths.logs / "curves.png")
    if parts.cfg.train.overlays > 0:
        _overlays(parts, parts.paths.logs / "overlays" / f"step_{step:07d}.png")


@torch.no_grad()
def _overlays(parts: RunParts, path: Path) -> None:
    from rtseg.training.evaluate import predict_classes

    data, net = parts.data, parts.model.kept
    count = min(parts.cfg.train.overlays, len(data.val_samples))
    images, truths, preds = [], [], []
    net.eval()
    for i in range(count):
        image, mask = data.val_samples.load(i)
        x, _ = data.val_set[i]
        preds.append(predict_classes(net, x[None].to(parts.device), mask.shape)[0].cpu()
                     .numpy())
        images.append(image)
        truths.append(mask)
    overlay_grid(images, truths, preds, data.info.palette_array(), path)
