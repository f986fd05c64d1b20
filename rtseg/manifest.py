"""The engine manifest: JSON beside every compiled engine, describing it completely.

A backend refuses a manifest that does not fit the machine (another TensorRT or OpenVINO
version, another GPU architecture, BF16 on a CPU without it) with an error naming both values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rtseg.errors import RtsegError
from rtseg.files import atomic_write
from rtseg.labels import LabelFacts, label_fields_from_plain

MANIFEST_VERSION = 1
FORMATS = ("onnx", "tensorrt", "aoti", "torch-tensorrt", "openvino")


@dataclass(frozen=True)
class TensorSpec:
    """One engine input or output: shape uses -1 for dynamic axes."""

    name: str
    shape: tuple[int, ...]
    dtype: str


INPUT, OUTPUT = "images", "logits"


def io_specs(batch: int, size: tuple[int, int], channels: int, half: bool,
             dynamic: bool) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs) of an engine: images (N,3,H,W) -> logits (N,C,H,W); -1 = dynamic."""
    dtype = "float16" if half else "float32"
    b, (h, w) = (-1, (-1, -1)) if dynamic else (batch, size)
    return ((TensorSpec(INPUT, (b, 3, h, w), dtype),),
            (TensorSpec(OUTPUT, (b, channels, h, w), dtype),))


# The JSON keys of a manifest, in the order manifests have always been written (the label
# facts' `drivable` is saved as `drivable_classes`).
JSON_KEYS = ("format", "precision", "engine", "inputs", "outputs", "classes",
             "drivable_classes", "mean", "std", "input_size", "binary", "model",
             "checkpoint_sha256", "versions", "device", "parity", "palette", "dynamic",
             "runtime", "manifest_version")


@dataclass(frozen=True, kw_only=True)
class Manifest(LabelFacts):
    """Everything a backend and the pipeline need to run an engine file: the label facts of
    its checkpoint (rtseg.labels.LabelFacts) and what the engine is."""

    format: str
    precision: str
    engine: str  # file name, beside the manifest
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_size: tuple[int, int]
    binary: bool
    model: str
    checkpoint_sha256: str
    versions: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    dynamic: bool = False
    runtime: dict = field(default_factory=dict)  # format-specific, e.g. OpenVINO's hints
    manifest_version: int = MANIFEST_VERSION

    @property
    def failed_gate(self) -> bool:
        """True when `rtseg compile` wrote this manifest for an engine its parity gate
        refused (kept for inspection; nothing runs it)."""
        return (self.parity or {}).get("passed") is False

    @property
    def short_id(self) -> str:
        """`model@hash8/format-precision`, for the wire protocol's `model` field."""
        return f"{self.model}@{self.checkpoint_sha256[:8]}/{self.format}-{self.precision}"


def write_manifest(path: Path, manifest: Manifest) -> Path:
    """Write `manifest` as indented JSON (atomically)."""
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(_to_plain(manifest), indent=1) + "\n")
    return path


def read_manifest(path: str | Path) -> Manifest:
    """Load and validate a manifest; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise RtsegError(f"manifest {path} does not exist (make one with `rtseg compile`)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RtsegError(f"manifest {path} is not valid JSON: {exc}") from None
    try:
        manifest = _from_plain(raw)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RtsegError(f"manifest {path} is incomplete or malformed ({exc!r}); "
                         "compile the engine again") from None
    if manifest.format not in FORMATS:
        raise RtsegError(f"manifest {path}: unknown format {manifest.format!r}")
    return manifest


def engine_path(manifest_path: Path, manifest: Manifest) -> Path:
    """The engine file a manifest describes (beside it)."""
    path = manifest_path.parent / manifest.engine
    if not path.is_file():
        raise RtsegError(f"engine {path} named by {manifest_path} does not exist")
    return path


def _to_plain(manifest: Manifest) -> dict:
    plain = asdict(manifest)
    plain["drivable_classes"] = plain.pop("drivable")
    return {key: plain[key] for key in JSON_KEYS}


def _from_plain(raw: dict) -> Manifest:
    if raw.get("manifest_version") != MANIFEST_VERSION:
        raise ValueError(f"manifest_version {raw.get('manifest_version')} is not "
                         f"{MANIFEST_VERSION}")
    tensors = {k: tuple(TensorSpec(t["name"], tuple(int(d) for d in t["shape"]),
                                   str(t["dtype"])) for t in raw[k])
               for k in ("inputs", "outputs")}
    return Manifest(
        **label_fields_from_plain(raw, drivable_key="drivable_classes"),
        format=str(raw["format"]), precision=str(raw["precision"]), engine=str(raw["engine"]),
        inputs=tensors["inputs"], outputs=tensors["outputs"],
        input_size=(int(raw["input_size"][0]), int(raw["input_size"][1])),
        binary=bool(raw["binary"]), model=str(raw["model"]),
        checkpoint_sha256=str(raw["checkpoint_sha256"]), versions=dict(raw["versions"]),
        device=dict(raw["device"]), parity=dict(raw["parity"]),
        dynamic=bool(raw.get("dynamic", False)), runtime=dict(raw.get("runtime", {})))


def engine_metadata(device) -> dict:
    """`versions` and `device` entries for a manifest built on `device` (a torch.device)."""
    import torch

    from rtseg import __version__

    versions = {"rtseg": __version__, "torch": torch.__version__}
    for module in ("onnx", "onnxruntime", "tensorrt", "torch_tensorrt"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        info = {"type": "cuda", "name": torch.cuda.get_device_name(device),
                "capability": f"{major}.{minor}"}
    else:
        import platform

        info = {"type": "cpu", "name": platform.processor() or platform.machine(),
                "capability": None}
    return {"versions": versions, "device": info}
