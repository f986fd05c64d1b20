"""The training loop: rounds of optimizer steps, each ended by BN re-estimation, validation,
logs, the best checkpoint (by val mIoU or loss), resumable state and early stopping.

Runs in one process, or in N under `torchrun` (DistributedDataParallel; rank 0 writes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torch import nn

from rtseg.config import TrainConfig
from rtseg.device import pick_device
from rtseg.signals import StopRequested, stop_requests
from rtseg.training.distributed import broadcast_flag, close_world, init_world
from rtseg.training.evaluate import evaluate
from rtseg.training.run import Run, build_run, save_best, write_round_logs
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
        run = build_run(cfg, device, world, resume)
        stopped = _rounds(run, progress)
    finally:
        close_world(world)
    return TrainResult(str(cfg.output.path), run.best_step, run.best_metrics,
                       time.perf_counter() - start, run.step, stopped, world.main)


def _rounds(run: Run, progress: bool) -> bool:
    """Train round after round; True if early stopping ended the run."""
    bar = _progress(run, progress)
    batches = run.batches()
    try:
        with stop_requests():
            return _loop_rounds(run, batches, bar)
    except StopRequested as stop:
        # last.pt is only ever written at the end of a round, so what --resume continues
        # from is always a consistent point, whatever the signal hit.
        stop.detail = (f"at step {run.step}; --resume continues from the last evaluation "
                       f"round ({run.last_path})")
        raise
    finally:
        bar.close()


def _loop_rounds(run: Run, batches, bar) -> bool:
    while run.step < run.total_steps:
        boundary = min(run.total_steps, (run.step // run.eval_every + 1) * run.eval_every)
        _train_until(run, batches, boundary, bar)
        if _end_round(run):
            return True
    return False


def _train_until(run: Run, batches, boundary: int, bar) -> None:
    """Optimizer steps up to `boundary`, timing the wait for data apart from the step."""
    waited = time.perf_counter()
    for x, y in batches:
        got = time.perf_counter()
        loss = _step(run, x.to(run.device, non_blocking=True), y.to(run.device))
        done = time.perf_counter()
        run.add_step(loss, x.shape[0], got - waited, done - got)
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", step_img_s=f"{run.rates()[1]:.1f}",
                        loader_img_s=f"{run.rates()[0]:.1f}")
        waited = done
        if run.step >= boundary:
            return


def _step(run: Run, x: torch.Tensor, y: torch.Tensor) -> float:
    """One optimizer update; returns the loss."""
    run.train_mode()
    amp = run.scaler is not None
    with torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=amp):
        logits = run.model(x)
    loss = run.loss_fn(logits.float(), y)
    run.optimizer.zero_grad(set_to_none=True)
    if amp:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        loss.backward()
    if run.cfg.train.clip_grad > 0:
        nn.utils.clip_grad_norm_(run.net.parameters(), run.cfg.train.clip_grad)
    if amp:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.schedule.step()
    return float(loss.detach())


def _end_round(run: Run) -> bool:
    """Validate, log, keep the best, save last.pt; True when early stopping says stop."""
    if not run.cfg.train.freeze_bn:
        run.recalibrate_batchnorm()
    metrics = evaluate(run.net, run.val_batches(), run.info.classes, run.info.drivable_ids,
                       run.info.ignore_index, run.device, run.loss_fn, run.world)
    improved = run.record_round(metrics)
    if run.world.main:
        log.info("step %d: val mIoU %.4f drivable IoU %.4f loss %.4f%s", run.step,
                 metrics["miou"], metrics["drivable_iou"], metrics["loss"],
                 " (best)" if improved else "")
        write_round_logs(run, metrics)
        if improved:
            save_best(run, metrics)
        save_state(run.last_path, run.net, run.optimizer, run.schedule, run.scaler,
                   run.counters())
    patience = run.cfg.train.patience
    return broadcast_flag(run.world, patience > 0 and run.bad_rounds >= patience)


def _progress(run: Run, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=run.total_steps, initial=run.step, desc="train", unit="step",
                disable=not (enabled and run.world.main), dynamic_ncols=True)
