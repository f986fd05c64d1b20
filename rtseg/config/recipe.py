"""Training recipes: frozen dataclasses parsed once from TOML + flags, never mutated.

A recipe (TOML) has the sections `[model]`, `[data]`, `[augment]`, `[train]`, `[output]` and
optionally `[distill]`; every key maps onto a field below, and an unknown key is an error that
names it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from rtseg.errors import RtsegError, type_name


@dataclass(frozen=True)
class ModelConfig:
    """Which architecture; kwargs go to its builder (e.g. `encoder` for unet).

    backbone_weights: a local state dict for the encoder only. init: a local rtseg
    checkpoint to start from (fine-tuning, or a second stage of a recipe): same model and
    classes, and kwargs that at most add modules (LR-ASPP's `fine = true` grown from a
    plain LR-ASPP); its weights are loaded, the optimiser and schedule start afresh.
    """

    name: str = "lraspp_mobilenet_v3"
    kwargs: dict = field(default_factory=dict)
    backbone_weights: str | None = None
    init: str | None = None
    binary: bool = False  # one output channel + sigmoid, for two-class (road / not) data


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and at what size the network sees them.

    kind: synthetic | folder | coco | cityscapes | voc | camvid. height, width: training crop
    and evaluation input size. classes / palette / drivable / ignore_index override what the
    reader knows (folder masks need `classes`; colour masks need `palette`, one RGB per class).
    split: ratios (train, val[, test]) for readers without a val folder, shuffled with `seed`.
    annotations: COCO JSON path relative to root (default: Roboflow's per-split layout).
    train_size / val_size: number of generated scenes (synthetic only).
    """

    kind: str = "synthetic"
    root: str = ""
    height: int = 192
    width: int = 352
    train_size: int = 2000
    val_size: int = 64
    seed: int = 0
    drivable: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    ignore_index: int = 255
    split: tuple[float, ...] = (0.9, 0.1)
    annotations: str = ""


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation of (image, mask) pairs (masks: nearest, padding = ignore).

    scale: random rescale range before the random crop to (height, width); hflip: probability;
    rotate: max degrees; brightness/contrast/saturation/hue: ColorJitter strengths; blur:
    probability of a Gaussian blur; noise: std of additive Gaussian noise on [0, 1] images.
    crop: training crop (h, w), multiples of 32 (default: the data's height x width, which
    stays the network's evaluation and export size); smaller crops buy more steps per hour.
    """

    enabled: bool = True
    crop: tuple[int, int] | None = None
    scale: tuple[float, float] = (0.5, 2.0)
    hflip: float = 0.5
    rotate: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    blur: float = 0.0
    noise: float = 0.0


@dataclass(frozen=True)
class TrainParams:
    """Optimisation and the shape of the run.

    steps: optimizer updates in all; with epochs > 0 instead steps = epochs x batches per
    epoch and one evaluation per epoch. eval_every: steps between evaluations (a "round"),
    each after re-estimating BatchNorm statistics on `bn_batches` training batches.
    loss: ce | bce (binary models) | dice | ce+dice | ohem (hardest `ohem_keep` of pixels) |
    lovasz (Lovasz-softmax, the mean-IoU surrogate; for fine-tuning) | ce+lovasz | ohem+lovasz.
    optimizer: adamw | adam | sgd; schedule: poly | cosine | constant, after linear warm-up.
    amp: mixed precision on CUDA (FP16); cpu_bf16: BF16 autocast on a CPU (AVX512-BF16 or
    AMX; elsewhere FP32, with a warning); channels_last: NHWC model and batches.
    aux_weight: weight of each booster head's loss for models that return several logits
    while training (BiSeNetV2).
    clip_grad: max gradient norm (0: off). ema: decay of an exponential moving average of
    the weights, updated after every step (e.g. 0.995; 0: off); with it the rounds validate,
    keep and save the averaged weights, and log.csv adds the raw weights' val mIoU.
    freeze_backbone,
    freeze_bn: for fine-tuning. patience: rounds without improvement of `select` (miou or
    loss; last keeps every round, so the checkpoint is the last round's) before stopping
    early (0: never). overlays: val images drawn per round.
    """

    steps: int = 2000
    epochs: int = 0
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    optimizer: str = "adamw"
    schedule: str = "poly"
    warmup_steps: int = 100
    loss: str = "ce"
    class_weights: tuple[float, ...] | None = None
    ohem_keep: float = 0.25
    clip_grad: float = 0.0
    ema: float = 0.0
    amp: bool = True
    cpu_bf16: bool = False
    channels_last: bool = False
    aux_weight: float = 1.0
    freeze_backbone: bool = False
    freeze_bn: bool = False
    eval_every: int = 250
    bn_batches: int = 16
    patience: int = 0
    select: str = "miou"
    overlays: int = 4
    workers: int = 0
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): with a `teacher` checkpoint (same classes
    and normalisation, any model), each step adds weight x T^2 x KL(teacher || student) of
    the temperature-T softmaxes, over every pixel (ignored ones too). flip: the teacher's
    probabilities are the mean over the image and its mirror (a test-time-augmented teacher
    whose gain the student learns to give in one pass). bf16: the teacher runs under BF16
    autocast (~1.7x faster on a CPU with AVX512-BF16; its targets need not be exact)."""

    teacher: str = ""  # empty: no distillation
    weight: float = 1.0
    temperature: float = 1.0
    flip: bool = False
    bf16: bool = False


@dataclass(frozen=True)
class OutputConfig:
    """The best checkpoint goes to `path` (half: FP16 weights, half the size); the run's
    log.csv, curves.png, overlays/ and last.pt (for --resume) go to `logs`
    (default runs/<path stem>)."""

    path: str = "runs/model.pt"
    half: bool = False
    logs: str = ""
    notes: str = ""  # stored in the checkpoint, e.g. the data set's licence

    @property
    def logs_dir(self) -> Path:
        """Where the run's logs and resumable state go."""
        return Path(self.logs) if self.logs else Path("runs") / Path(self.path).stem


@dataclass(frozen=True)
class TrainConfig:
    """A whole training recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainParams = field(default_factory=TrainParams)
    output: OutputConfig = field(default_factory=OutputConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def as_dict(self) -> dict:
        """Plain dict (for the checkpoint's `recipe` entry)."""
        return _plain(self)


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a TOML recipe; overrides are `section.key -> value` pairs from CLI flags."""
    path = Path(path)
    if not path.is_file():
        raise RtsegError(f"recipe {path} does not exist (see train/README.md for recipes)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RtsegError(f"recipe {path} is not valid TOML: {exc}") from exc
    config = build_dataclass(TrainConfig, raw, where=str(path))
    overrides = dict(overrides or {})
    if overrides.get("train.steps") is not None:  # a run's length from the command line
        if overrides.get("train.epochs") is not None:
            raise RtsegError("--steps and --epochs both set how long the run is: give one")
        overrides["train.epochs"] = 0  # ... wins over the recipe's epochs
    return apply_overrides(config, overrides)


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """New config with `section.key` values replaced; None values are skipped."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        sub = getattr(config, section)
        config = replace(config, **{section: replace(sub, **{key: value})})
    return config


def build_dataclass(cls, raw: dict, where: str):
    """Instantiate dataclass `cls` from a nested dict, rejecting unknown keys by name."""
    if not isinstance(raw, dict):
        raise RtsegError(f"{where}: expected a table, got {type_name(raw)}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise RtsegError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    values = {}
    for name, value in raw.items():
        default = getattr(cls(), name) if _has_defaults(cls) else None
        if is_dataclass(default):
            values[name] = build_dataclass(type(default), value, f"{where} [{name}]")
        elif isinstance(value, list):
            values[name] = _tuples(value)
        else:
            values[name] = value
    return cls(**values)


def _tuples(value):
    """Nested lists (TOML arrays) -> nested tuples, so frozen configs stay hashable."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _has_defaults(cls) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True


def _plain(obj):
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj
