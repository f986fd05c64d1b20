"""Frozen configuration dataclasses, parsed once from TOML + flags and never mutated.

A recipe (TOML) has the sections `[model]`, `[data]`, `[train]`, `[output]`; every key
maps onto a field below, and an unknown key is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import tomllib

from rtseg.errors import RtsegError


@dataclass(frozen=True)
class ModelConfig:
    """Which architecture; kwargs go to its builder (e.g. `encoder` for unet)."""

    name: str = "lraspp_mobilenet_v3"
    kwargs: dict = field(default_factory=dict)
    backbone_weights: str | None = None


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from. kind: `synthetic` (generated road scenes)."""

    kind: str = "synthetic"
    root: str = ""
    height: int = 192
    width: int = 352
    train_size: int = 2000
    val_size: int = 64
    seed: int = 0
    drivable: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TrainParams:
    """Optimisation. Steps count optimizer updates; eval runs every `eval_every` steps, after
    re-estimating BatchNorm statistics on `bn_batches` training batches."""

    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    eval_every: int = 250
    bn_batches: int = 16
    workers: int = 0
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class OutputConfig:
    """Where the best checkpoint goes; half stores FP16 weights (half the size)."""

    path: str = "runs/model.pt"
    half: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """A whole training recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainParams = field(default_factory=TrainParams)
    output: OutputConfig = field(default_factory=OutputConfig)

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
    return apply_overrides(config, overrides or {})


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
        raise RtsegError(f"{where}: expected a table, got {type(raw).__name__}")
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
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


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


@dataclass(frozen=True)
class RunConfig:
    """`rtseg run`: one source, one model, one PUB endpoint.

    model None means the bundled demo checkpoint. fps caps the output rate (None: as fast as
    frames come). source_fps paces folders of images (files use their own rate).
    """

    source: str = "demo"
    model: str | None = None
    name: str | None = None
    bind: str = "tcp://127.0.0.1:5555"
    allow_remote: bool = False
    encoding: str = "mono8"
    device: str = "auto"
    max_frames: int | None = None
    fps: float | None = None
    pace: bool = False
    loop: bool = False
    source_fps: float = 30.0
    demo_size: tuple[int, int] = (360, 640)
    status_every: float = 5.0
    hwm: int = 4

    def __post_init__(self) -> None:
        if self.encoding not in ("mono8", "bits", "png"):
            raise RtsegError(f"unknown --encoding {self.encoding!r}: use mono8, bits or png")
        if self.max_frames is not None and self.max_frames < 1:
            raise RtsegError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.fps is not None and not self.fps > 0:
            raise RtsegError(f"--fps must be > 0, got {self.fps}")


def parse_size(text: str) -> tuple[int, int]:
    """`HxW` (e.g. 360x640) -> (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RtsegError(f"size {text!r} is not HxW, e.g. 360x640") from None
    if h < 1 or w < 1:
        raise RtsegError(f"size {text!r} must be positive")
    return h, w
