"""The self-describing checkpoint: one file, `torch.load(weights_only=True)`, no pickled code.

Everything `compile`, `run` and `eval` need is inside: model name and arguments, class
names, drivable classes, input size, normalisation, the state dict, metrics and the recipe.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from rtseg import __version__
from rtseg.errors import RtsegError, type_name
from rtseg.files import atomic_write
from rtseg.labels import LabelFacts, label_fields_from_plain
from rtseg.models import build_model, model_info

FORMAT = "rtseg-checkpoint"
FORMAT_VERSION = 1
DEMO_NAME = "demo"


# The keys of the saved "meta" dict, in the order checkpoints have always been written.
META_KEYS = ("model", "model_kwargs", "classes", "drivable", "input_size", "mean", "std",
             "ignore_index", "binary", "palette", "metrics", "recipe", "notes")


@dataclass(frozen=True, kw_only=True)
class CheckpointMeta(LabelFacts):
    """Everything but the weights: the label facts the model was trained with (classes,
    drivable, mean/std, palette: rtseg.labels.LabelFacts), the model's name and arguments,
    its input_size (H, W), the training metrics and recipe."""

    model: str
    model_kwargs: dict = field(default_factory=dict)
    input_size: tuple[int, int] = (512, 1024)
    ignore_index: int = 255
    binary: bool = False  # one output channel, sigmoid: class 1 where the logit is > 0
    metrics: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def out_channels(self) -> int:
        """Channels of the model's logits: 1 for a binary model, else one per class."""
        return 1 if self.binary else len(self.classes)


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: metadata, weights, and where it came from."""

    meta: CheckpointMeta
    state_dict: dict
    path: Path | None = None
    sha256: str = ""

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """The model in eval mode, float32, on `device`, weights loaded."""
        model = build_model(self.meta.model, self.meta.out_channels, **self.meta.model_kwargs)
        state = {k: v.float() if v.is_floating_point() else v for k, v in self.state_dict.items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            where = self.path or "checkpoint"
            first = str(exc).splitlines()[0]
            raise RtsegError(
                f"{where}: weights do not fit model {self.meta.model!r}: {first}") from None
        return model.to(device).eval()

    @property
    def short_id(self) -> str:
        """`model@hash8`, used in the wire protocol's `model` field."""
        return f"{self.meta.model}@{self.sha256[:8]}" if self.sha256 else self.meta.model


def save_checkpoint(path: str | Path, model: nn.Module, meta: CheckpointMeta,
                    half: bool = False) -> Path:
    """Write `model`'s weights and `meta` to `path` (atomically); half=True stores FP16 floats."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rtseg_version": __version__,
        "meta": _meta_to_plain(meta),
        "state_dict": state,
    }
    with atomic_write(path) as fh:
        torch.save(payload, fh)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate an rtseg checkpoint; `demo` names the bundled demo checkpoint."""
    path = resolve_checkpoint_path(path)
    payload = _read(path)
    meta = _meta_from_plain(payload.get("meta"), path)
    model_info(meta.model)  # unknown model -> RtsegError naming the known ones
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise RtsegError(f"{path}: checkpoint has no weights (state_dict missing or empty)")
    return Checkpoint(meta=meta, state_dict=state, path=path, sha256=file_sha256(path))


def resolve_checkpoint_path(path: str | Path) -> Path:
    """`demo` -> the bundled checkpoint's path; anything else must be an existing file."""
    if str(path) == DEMO_NAME:
        bundled = Path(str(resources.files("rtseg") / "assets" / "demo.pt"))
        if not bundled.is_file():
            raise RtsegError(f"the bundled demo checkpoint {bundled} is missing: reinstall "
                             "rtseg, or rebuild it with `rtseg train train/demo.toml`")
        return bundled
    path = Path(path)
    if not path.is_file():
        raise RtsegError(f"checkpoint {path} does not exist (train one with `rtseg train`, "
                         "or use `demo` for the bundled one)")
    return path


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def with_metrics(meta: CheckpointMeta, metrics: dict) -> CheckpointMeta:
    """A copy of `meta` carrying `metrics`."""
    return replace(meta, metrics=dict(metrics))


def _read(path: Path) -> dict:
    if not zipfile.is_zipfile(path):
        raise RtsegError(f"{path} is not an rtseg checkpoint (not a torch zip file; "
                         "truncated or another format?)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or unsafe files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type_name(exc)
        raise RtsegError(f"{path} could not be loaded as a checkpoint (damaged, truncated, "
                         f"or holds pickled code): {first}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RtsegError(f"{path} is a torch file but not an rtseg checkpoint "
                         f"(no format={FORMAT!r} entry); train with `rtseg train`")
    if payload.get("format_version") != FORMAT_VERSION:
        raise RtsegError(f"{path}: checkpoint format version {payload.get('format_version')} "
                         f"is not supported (this rtseg reads {FORMAT_VERSION})")
    return payload


def _meta_to_plain(meta: CheckpointMeta) -> dict:
    full = asdict(meta)
    plain = {key: full[key] for key in META_KEYS}
    for key in ("classes", "drivable", "input_size", "mean", "std"):
        plain[key] = list(plain[key])
    plain["palette"] = [list(c) for c in plain["palette"]]
    return plain


def _meta_from_plain(plain, path: Path) -> CheckpointMeta:
    if not isinstance(plain, dict):
        raise RtsegError(f"{path}: checkpoint has no metadata")
    try:
        meta = CheckpointMeta(
            **label_fields_from_plain({"drivable": (), **plain}),
            model=str(plain["model"]),
            model_kwargs=dict(plain.get("model_kwargs", {})),
            input_size=(int(plain["input_size"][0]), int(plain["input_size"][1])),
            ignore_index=int(plain.get("ignore_index", 255)),
            binary=bool(plain.get("binary", False)),
            metrics=dict(plain.get("metrics", {})),
            recipe=dict(plain.get("recipe", {})),
            notes=str(plain.get("notes", "")),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RtsegError(
            f"{path}: checkpoint metadata is incomplete or malformed ({exc!r})") from None
    unknown = set(meta.drivable) - set(meta.classes)
    if unknown:
        raise RtsegError(f"{path}: drivable classes {sorted(unknown)} are not among the classes")
    return meta
