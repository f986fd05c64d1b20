"""Everything one training run holds: data, model, optimisation, counters, output paths."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.checkpoint import CheckpointMeta, save_checkpoint
from rtseg.config import TrainConfig
from rtseg.data.datasets import open_data
from rtseg.data.transforms import PairDataset, eval_transform, train_transform
from rtseg.errors import RtsegError
from rtseg.models import build_model
from rtseg.training import data as tdata
from rtseg.training.distributed import World
from rtseg.training.logs import CsvLog, overlay_grid, plot_curves
from rtseg.training.losses import build_loss
from rtseg.training.optim import build_optimizer, build_schedule, freeze, train_mode
from rtseg.training.state import load_state


class Run:
    """Mutable state of one run; built by `build_run`, advanced by the loop."""

    def __init__(self, cfg: TrainConfig, device: torch.device, world: World):
        self.cfg, self.device, self.world = cfg, device, world
        self.logs_dir = cfg.output.logs_dir
        self.last_path = self.logs_dir / "last.pt"
        self.step, self.best, self.best_step, self.bad_rounds = 0, None, 0, 0
        self.best_metrics: dict = {}
        self._round = np.zeros(5)  # loss sum, steps, images, wait s, compute s

    # ------------------------------------------------------------------ data
    def batches(self):
        """Training batches from the current step on, epoch after epoch."""
        epoch, skip = divmod(self.step, self.steps_per_epoch)
        while True:
            yield from tdata.epoch_loader(self.train_samples, self.cfg.train.batch_size, epoch,
                                          self.world, self.cfg.train.workers, skip)
            epoch, skip = epoch + 1, 0

    def val_batches(self):
        """This rank's share of the validation set, batch size 1."""
        return tdata.val_loader(self.val_set, self.world, self.cfg.train.workers)

    # ------------------------------------------------------------------ model
    def train_mode(self) -> None:
        """Train mode, with BatchNorm kept in eval mode when frozen."""
        train_mode(self.net)

    @torch.no_grad()
    def recalibrate_batchnorm(self) -> None:
        """Precise BN on `bn_batches` training batches, then rank 0's statistics everywhere.

        torchvision's MobileNetV3 uses BN momentum 0.01: running averages lag weights that
        change fast (training from scratch) so far that eval-mode masks collapse (val mIoU
        0.12 vs 0.75 with re-estimated statistics, demo recipe at step 250).
        """
        norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        count = self.cfg.train.bn_batches
        if not norms or count <= 0:
            return
        momenta = [bn.momentum for bn in norms]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # exact average over the batches below
        self.net.train()
        loader = tdata.epoch_loader(self.train_samples, self.cfg.train.batch_size,
                                    10_000_000 + self.step, self.world, 0)
        for _, (x, _) in zip(range(count), loader):
            self.net(x.to(self.device))
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        _broadcast_buffers(self.net, self.world)

    # ------------------------------------------------------------------ counters
    def add_step(self, loss: float, images: int, wait_s: float, compute_s: float) -> None:
        """Account one optimizer step."""
        self.step += 1
        self._round += (loss, 1, images, wait_s, compute_s)

    def rates(self) -> tuple[float, float]:
        """(loader images/s, train-step images/s) over the current round."""
        _, _, images, wait, compute = self._round
        return images / max(wait, 1e-9), images / max(compute, 1e-9)

    def record_round(self, metrics: dict) -> bool:
        """Fold a validation result into best / bad_rounds; True if it is the new best."""
        select = self.cfg.train.select
        value = metrics["loss"] if select == "loss" else metrics["miou"]
        better = self.best is None or (value < self.best if select == "loss" else
                                       value > self.best)
        if better:
            self.best, self.best_step, self.bad_rounds = value, self.step, 0
            self.best_metrics = {**metrics, "step": self.step}
        else:
            self.bad_rounds += 1
        return better

    def round_summary(self) -> dict:
        """Train loss and throughput of the round just ended (then starts a new one)."""
        loss, steps, _, _, _ = self._round
        loader, step = self.rates()
        self._round = np.zeros(5)
        return {"train_loss": loss / max(steps, 1), "loader_img_s": loader,
                "step_img_s": step}

    def counters(self) -> dict:
        """What last.pt keeps besides weights and optimiser."""
        return {"step": self.step, "best": self.best, "best_step": self.best_step,
                "bad_rounds": self.bad_rounds, "best_metrics": self.best_metrics,
                "round": self._round.tolist()}

    def restore(self, counters: dict) -> None:
        """Counters back from last.pt."""
        self.step, self.best = int(counters["step"]), counters["best"]
        self.best_step, self.bad_rounds = counters["best_step"], counters["bad_rounds"]
        self.best_metrics = dict(counters["best_metrics"])
        self._round = np.asarray(counters["round"], dtype=float)


def build_run(cfg: TrainConfig, device: torch.device, world: World, resume: bool) -> Run:
    """Data, model, optimiser, schedule and (with `resume`) the state of last.pt."""
    _check(cfg)
    run = Run(cfg, device, world)
    _build_data(run)
    _build_model(run)
    t = cfg.train
    run.steps_per_epoch = tdata.steps_per_epoch(len(run.train_samples), t.batch_size, world)
    if run.steps_per_epoch < 1:
        raise RtsegError(f"{len(run.train_samples)} training samples make no full batch of "
                         f"{t.batch_size} per process: lower [train] batch_size")
    run.total_steps = t.epochs * run.steps_per_epoch if t.epochs > 0 else t.steps
    run.eval_every = run.steps_per_epoch if t.epochs > 0 else max(1, t.eval_every)
    run.optimizer = build_optimizer(run.net, t.optimizer, t.lr, t.weight_decay, t.momentum)
    run.schedule = build_schedule(run.optimizer, t.schedule, run.total_steps, t.warmup_steps)
    run.scaler = torch.amp.GradScaler("cuda") if t.amp and device.type == "cuda" else None
    run.loss_fn = build_loss(t.loss, run.info.ignore_index, t.class_weights, t.ohem_keep)
    run.csv = CsvLog(run.logs_dir / "log.csv", resume=resume) if world.main else None
    if resume:
        run.restore(load_state(run.last_path, run.net, run.optimizer, run.schedule, run.scaler))
    return run


def _check(cfg: TrainConfig) -> None:
    if cfg.train.select not in ("miou", "loss"):
        raise RtsegError(f"[train] select must be miou or loss, got {cfg.train.select!r}")
    if cfg.model.binary != (cfg.train.loss == "bce"):
        raise RtsegError("a binary model ([model] binary = true) trains with loss = \"bce\", "
                         "and loss bce needs a binary model")


def _build_data(run: Run) -> None:
    cfg = run.cfg
    size = (cfg.data.height, cfg.data.width)
    if size[0] % 32 or size[1] % 32:
        raise RtsegError(f"[data] height and width must be multiples of 32, got {size}")
    train = open_data(cfg.data, "train")
    run.info = train.info
    if cfg.model.binary and len(run.info.classes) != 2:
        raise RtsegError(f"a binary model needs a two-class data set, got {run.info.classes}")
    transform = train_transform(cfg.augment, size, run.info.mean, run.info.std,
                                run.info.ignore_index)
    run.train_samples = tdata.SeededSamples(PairDataset(train, transform), cfg.train.seed)
    run.val_samples = open_data(cfg.data, "val")
    run.val_set = PairDataset(run.val_samples, eval_transform(size, run.info.mean,
                                                              run.info.std))


def _build_model(run: Run) -> None:
    cfg, info = run.cfg, run.info
    torch.manual_seed(cfg.train.seed)
    channels = 1 if cfg.model.binary else len(info.classes)
    run.net = build_model(cfg.model.name, channels, cfg.model.backbone_weights,
                          **cfg.model.kwargs).to(run.device)
    freeze(run.net, cfg.train.freeze_backbone, cfg.train.freeze_bn)
    run.model = run.net
    if run.world.size > 1:
        ids = [run.device.index] if run.device.type == "cuda" else None
        run.model = nn.parallel.DistributedDataParallel(run.net, device_ids=ids)
    run.meta = CheckpointMeta(
        model=cfg.model.name, model_kwargs=dict(cfg.model.kwargs), classes=info.classes,
        drivable=info.drivable, input_size=(cfg.data.height, cfg.data.width), mean=info.mean,
        std=info.std, ignore_index=info.ignore_index, binary=cfg.model.binary,
        palette=tuple(tuple(int(v) for v in c) for c in info.palette_array()),
        recipe=cfg.as_dict(), notes=cfg.output.notes)


def save_best(run: Run, metrics: dict) -> None:
    """Write the best checkpoint with its metrics (rank 0)."""
    meta = replace(run.meta, metrics={**metrics, "step": run.step})
    save_checkpoint(run.cfg.output.path, run.net, meta, half=run.cfg.output.half)


def write_round_logs(run: Run, metrics: dict) -> None:
    """CSV row, curves PNG and an overlay grid of the first val images (rank 0)."""
    row = {"step": run.step, "epoch": round(run.step / run.steps_per_epoch, 3),
           **run.round_summary(), "val_loss": metrics["loss"], "val_miou": metrics["miou"],
           "val_drivable_iou": metrics["drivable_iou"],
           "val_pixel_accuracy": metrics["pixel_accuracy"],
           "lr": run.optimizer.param_groups[0]["lr"]}
    run.csv.append(row)
    plot_curves(run.csv.rows, run.logs_dir / "curves.png")
    if run.cfg.train.overlays > 0:
        _overlays(run, Path(run.logs_dir / "overlays" / f"step_{run.step:07d}.png"))


@torch.no_grad()
def _overlays(run: Run, path: Path) -> None:
    from rtseg.training.evaluate import predict_classes

    count = min(run.cfg.train.overlays, len(run.val_samples))
    images, truths, preds = [], [], []
    run.net.eval()
    for i in range(count):
        image, mask = run.val_samples.load(i)
        x, _ = run.val_set[i]
        preds.append(predict_classes(run.net, x[None].to(run.device), mask.shape)[0].cpu()
                     .numpy())
        images.append(image)
        truths.append(mask)
    overlay_grid(images, truths, preds, run.info.palette_array(), path)


def _broadcast_buffers(net: nn.Module, world: World) -> None:
    if world.size == 1:
        return
    import torch.distributed as dist

    for buffer in net.buffers():
        dist.broadcast(buffer, src=0)
