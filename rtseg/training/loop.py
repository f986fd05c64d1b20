"""The training loop: rounds of optimizer steps, each ended by BN re-estimation, validation,
logs, the best checkpoint (by val mIoU or loss), resumable state and early stopping.

Runs in one process, or in N under `torchrun` (DistributedDataParallel; rank 0 writes).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from rtseg.config import TrainConfig
from rtseg.device import pick_device
from rtseg.errors import RtsegError
from rtseg.signals import StopRequested, stop_requests
from rtseg.training.distributed import broadcast_flag, close_world, init_world
from rtseg.training.evaluate import evaluate
from rtseg.training.optim import train_mode
from rtseg.training.progress import Progress
from rtseg.training.run import (
    RunParts,
    build_run,
    recalibrate_batchnorm,
    save_best,
    train_batches,
    val_batches,
    write_round_logs,
)
from rtseg.training.state import save_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the best checkpoint went, its step and validation metrics."""

    checkpoint: str
    best_step: int
    metrics: dict
    seconds: float
    steps: int
    stopped_early: bool
    main: bool = True  # False on the other ranks under torchrun (they print nothing)


def train(cfg: TrainConfig, progress: bool = True, resume: bool = False) -> TrainResult:
    """Run a recipe to its last step (or early stop); `resume` continues from last.pt."""
    device = pick_device(cfg.train.device)
    world = init_world(device)
    start = time.perf_counter()
    try:
        parts, reached = build_run(cfg, device, world, resume)
        stopped = _rounds(parts, reached, progress)
    finally:
        close_world(world)
    return TrainResult(str(cfg.output.path), reached.best_step, reached.best_metrics,
                       time.perf_counter() - start, reached.step, stopped, world.main)


def _rounds(parts: RunParts, progress: Progress, show: bool) -> bool:
    """Train round after round; True if early stopping ended the run."""
    bar = _progress_bar(parts, progress, show)
    batches = train_batches(parts, progress.step)
    try:
        with stop_requests():
            return _loop_rounds(parts, progress, batches, bar)
    except StopRequested as stop:
        # last.pt is only ever written at the end of a round, so what --resume continues
        # from is always a consistent point, whatever the signal hit.
        stop.detail = (f"at step {progress.step}; --resume continues from the last evaluation "
                       f"round ({parts.paths.last})")
        raise
    finally:
        bar.close()


def _loop_rounds(parts: RunParts, progress: Progress, batches, bar) -> bool:
    total, every = parts.optim.total_steps, parts.optim.eval_every
    while progress.step < total:
        boundary = min(total, (progress.step // every + 1) * every)
        _train_until(parts, progress, batches, boundary, bar)
        if _end_round(parts, progress):
            return True
    return False


def _train_until(parts: RunParts, progress: Progress, batches, boundary: int, bar) -> None:
    """Optimizer steps up to `boundary`, timing the wait for data apart from the step."""
    waited = time.perf_counter()
    for x, y in batches:
        got = time.perf_counter()
        loss = _step(parts, x.to(parts.device, non_blocking=True), y.to(parts.device),
                     progress)
        finished = time.perf_counter()
        progress.add_step(loss, x.shape[0], got - waited, finished - got)
        loader_rate, step_rate = progress.this_round.rates()
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", step_img_s=f"{step_rate:.1f}",
                        loader_img_s=f"{loader_rate:.1f}")
        waited = finished
        if progress.step >= boundary:
            return


def _step(parts: RunParts, x: torch.Tensor, y: torch.Tensor, progress: Progress) -> float:
    """The next optimizer update on x (N, 3, H, W) float32, y (N, H, W) int64; returns the
    loss. A non-finite loss stops the run before it can reach the weights."""
    model, o = parts.model, parts.optim
    train_mode(model.net, model.freeze_bn)
    amp = o.scaler is not None
    if parts.cfg.train.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(parts, amp):
        outputs = model.wrapped(x)
        distilled = parts.teacher.loss(x, outputs) if parts.teacher is not None else None
    loss = o.loss_fn(outputs, y)
    if distilled is not None:
        loss = loss + distilled
    value = float(loss.detach())
    if not math.isfinite(value):
        raise RtsegError(_non_finite_message(
            parts, f"the training loss of step {progress.step + 1}", value, progress.step))
    o.optimizer.zero_grad(set_to_none=True)
    if amp:
        o.scaler.scale(loss).backward()
        o.scaler.unscale_(o.optimizer)
    else:
        loss.backward()
    if parts.cfg.train.clip_grad > 0:
        nn.utils.clip_grad_norm_(model.net.parameters(), parts.cfg.train.clip_grad)
    if amp:
        o.scaler.step(o.optimizer)
        o.scaler.update()
    else:
        o.optimizer.step()
    o.schedule.step()
    if model.ema is not None:
        model.ema.update_parameters(model.net)
    return value


def _non_finite_message(parts: RunParts, what: str, value: float, done: int) -> str:
    """What to say when `what` (e.g. "the training loss of step 7") is inf or NaN, `done`
    steps after the start of training (rounds end every `eval_every` steps)."""
    train, last = parts.cfg.train, parts.paths.last
    saved = done // parts.optim.eval_every * parts.optim.eval_every
    if parts.device.type == "cpu" and train.cpu_bf16:
        precision, fp32 = "BF16 autocast", ", or train in FP32 (cpu_bf16 = false)"
    elif parts.optim.scaler is not None:
        precision, fp32 = "FP16 autocast", ", or train in FP32 (amp = false)"
    else:
        precision, fp32 = "FP32", ""
    kept = (f"{last} holds step {saved}, the last finished evaluation round, and --resume "
            "continues from it" if saved > 0
            else "no evaluation round had finished, so this run saved nothing")
    return (f"{what} is {value} ({precision}, lr {train.lr:g}): the run stopped and wrote "
            f"nothing of it; {kept}. Lower [train] lr or set [train] clip_grad (e.g. 1.0)"
            f"{fp32}")


def autocast(parts: RunParts, cuda_amp: bool):
    """FP16 autocast with a grad scaler on CUDA (`amp`), BF16 autocast on a CPU
    (`cpu_bf16`: same exponent range as FP32, so no scaler), else a no-op context."""
    if parts.device.type == "cpu" and parts.cfg.train.cpu_bf16:
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return torch.autocast(device_type=parts.device.type, dtype=torch.float16, enabled=cuda_amp)


def _end_round(parts: RunParts, progress: Progress) -> bool:
    """Validate, log, keep the best, save last.pt; True when early stopping says stop."""
    metrics = _validate(parts, parts.model.kept, progress)
    if parts.model.ema is not None:  # what the average buys, measured in the same round
        metrics["raw_miou"] = _validate(parts, parts.model.net, progress)["miou"]
    improved = progress.record_round(metrics, parts.cfg.train.select)
    totals = progress.end_round()
    if parts.world.main:
        raw = f" (raw weights {metrics['raw_miou']:.4f})" if "raw_miou" in metrics else ""
        log.info("step %d: val mIoU %.4f%s drivable IoU %.4f loss %.4f%s", progress.step,
                 metrics["miou"], raw, metrics["drivable_iou"], metrics["loss"],
                 " (best)" if improved else "")
        write_round_logs(parts, metrics, progress.step, totals.summary())
        if improved:
            save_best(parts, metrics, progress.step)
        o = parts.optim
        save_state(parts.paths.last, parts.model.net, o.optimizer, o.schedule, o.scaler,
                   progress.counters(), parts.model.ema)
    patience = parts.cfg.train.patience
    return broadcast_flag(parts.world, patience > 0 and progress.bad_rounds >= patience)


def _validate(parts: RunParts, net: nn.Module, progress: Progress) -> dict:
    """Val metrics of `net` (BN statistics re-estimated first unless frozen); an RtsegError
    before anything is saved if its loss is not finite."""
    if not parts.model.freeze_bn:
        recalibrate_batchnorm(parts, progress.step, net)
    info = parts.data.info
    metrics = evaluate(net, val_batches(parts), info.classes, info.drivable_ids,
                       info.ignore_index, parts.device, parts.optim.loss_fn, parts.world)
    if not math.isfinite(metrics["loss"]):  # the last update of the round broke the weights
        raise RtsegError(_non_finite_message(
            parts, f"the validation loss after step {progress.step}", metrics["loss"],
            progress.step - 1))
    return metrics


def _progress_bar(parts: RunParts, progress: Progress, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=parts.optim.total_steps, initial=progress.step, desc="train", unit="step",
                disable=not (enabled and parts.world.main), dynamic_ncols=True)
