"""Frozen configuration dataclasses, parsed once from TOML + flags and never mutated.

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

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"  # loopback unless the user asks (PROTOCOL.md)
ENGINE_FORMATS = ("onnx", "openvino", "aoti", "tensorrt", "torch-tensorrt")  # compile writes
COMPILE_FORMATS = ("auto", *ENGINE_FORMATS)  # rtseg compile --format
RUN_ENGINES = ("torch", "auto", "onnx", "openvino", "aoti", "tensorrt")  # run/bench --engine
OVERLAP_MODES = ("on", "off")  # run/bench --overlap
MASK_SIZES = ("frame", "input")  # run/bench --mask-size, besides HxW


def check_choice(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    """A value outside `choices` is an error naming the flag and every choice."""
    if value not in choices:
        raise RtsegError(f"unknown {flag} {value!r}: use {', '.join(map(str, choices))}")


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


@dataclass(frozen=True)
class RunConfig:
    """`rtseg run`: one or more sources, one model, one PUB endpoint.

    source / name: one string, or a tuple for several sources batched into one engine call
    (names: one per source, or None to derive them from the sources). model None means the
    bundled demo checkpoint. fps caps the output rate (None: as fast as frames come).
    source_fps paces folders of images (files use their own rate). max_frames counts the
    frames published over all sources. cuda_graphs: replay a captured CUDA graph per batch
    where the engine has static shapes (CUDA only).
    """

    source: str | tuple[str, ...] = "demo"
    model: str | None = None
    name: str | tuple[str, ...] | None = None
    bind: str = DEFAULT_ENDPOINT
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
    engine: str = "torch"  # torch (eager) | auto | onnx | aoti | tensorrt | openvino (cached)
    engine_cache: str = "engines/cache"
    calib: str | None = None  # real frames for the parity gate of a cache-compiled engine
    overlap: str = "on"  # host pipeline: publish a batch while the next infers (on | off)
    mask_size: str = "frame"  # published masks: frame | input (the network's) | HxW
    cuda_graphs: bool = True
    image_topic: bool = False  # also publish NAME/image (JPEG of the frame), rate-limited
    image_fps: float = 10.0
    image_width: int = 640  # JPEG width (frames narrower keep theirs)
    heartbeat_s: float = 1.0  # NAME/status period
    curve_secret: str | None = None  # CURVE server key pair file (rtseg keys)
    curve_clients: str | None = None  # folder of admitted client public keys

    @property
    def sources(self) -> tuple[str, ...]:
        """The --source values, in order."""
        return (self.source,) if isinstance(self.source, str) else tuple(self.source)

    @property
    def names(self) -> tuple[str, ...] | None:
        """The --name values (one per source), or None to derive them."""
        if self.name is None or self.name == ():
            return None
        return (self.name,) if isinstance(self.name, str) else tuple(self.name)

    def __post_init__(self) -> None:
        if not self.sources:
            raise RtsegError("no --source given: name at least one (camera0, a file, demo)")
        if self.names is not None and len(self.names) != len(self.sources):
            raise RtsegError(f"{len(self.names)} --name for {len(self.sources)} --source: give "
                             "one --name per --source, in the same order, or none")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise RtsegError(f"--name values must differ, got {list(self.names)}")
        if self.encoding not in ("mono8", "bits", "png"):
            raise RtsegError(f"unknown --encoding {self.encoding!r}: use mono8, bits or png")
        if self.max_frames is not None and self.max_frames < 1:
            raise RtsegError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.fps is not None and not self.fps > 0:
            raise RtsegError(f"--fps must be > 0, got {self.fps}")
        if not (self.image_fps > 0 and self.image_width >= 16):
            raise RtsegError(f"--image-fps must be > 0 and --image-width >= 16, got "
                             f"{self.image_fps} and {self.image_width}")
        if not self.heartbeat_s > 0:
            raise RtsegError(f"heartbeat period must be > 0 s, got {self.heartbeat_s}")
        if self.curve_clients is not None and self.curve_secret is None:
            raise RtsegError("--curve-clients needs --curve-secret (the node's own key pair)")
        check_choice("--engine", self.engine, RUN_ENGINES)
        check_choice("--overlap", self.overlap, OVERLAP_MODES)
        parse_mask_size(self.mask_size)


@dataclass(frozen=True)
class BenchConfig:
    """`rtseg bench`: engine-only, pipeline and naive-loop figures of one model, one run.

    model: checkpoint, `demo`, manifest or engine file. engine: how a checkpoint runs
    (auto/onnx/aoti/tensorrt/openvino compile once into engine_cache; torch: eager). sources: empty
    for in-memory frames of frame_size (None: 1080x1920 on CUDA, the network size on the
    CPU), one per camera (batch of them); else real sources (files, cameras). seconds:
    measured time per phase, after warmup_s. data/root: score the engine on that data set.
    checkpoint: the eager model of the naive-loop baseline (default: model, if a checkpoint).
    rounds: engine-only and pipeline alternate this many times (seconds split among them).
    """

    model: str = "demo"
    engine: str = "auto"
    sources: tuple[str, ...] = ()
    batch: int = 1
    height: int = 512
    width: int = 1024
    frame_size: tuple[int, int] | None = None
    seconds: float = 10.0
    warmup_s: float = 2.0
    device: str = "auto"
    data: str | None = None
    root: str = ""
    engine_cache: str = "engines/cache"
    calib: str | None = None  # real frames for the parity gate of a cache-compiled engine
    overlap: str = "on"  # host pipeline: publish a batch while the next infers (on | off)
    mask_size: str = "frame"  # published masks: frame | input (the network's) | HxW
    cuda_graphs: bool = True
    baseline: bool = True
    checkpoint: str | None = None
    rounds: int = 3

    def __post_init__(self) -> None:
        check_choice("--engine", self.engine, RUN_ENGINES)
        check_choice("--overlap", self.overlap, OVERLAP_MODES)
        parse_mask_size(self.mask_size)
        if self.batch < 1 or min(self.height, self.width) < 1:
            raise RtsegError(f"--batch, --height and --width must be >= 1, got {self.batch}, "
                             f"{self.height}, {self.width}")
        if self.rounds < 1:
            raise RtsegError(f"--rounds must be >= 1, got {self.rounds}")
        if not self.seconds > 0 or self.warmup_s < 0:
            raise RtsegError(f"--seconds must be > 0 and --warmup >= 0, got {self.seconds}, "
                             f"{self.warmup_s}")
        if self.sources and len(self.sources) != self.batch and self.batch != 1:
            raise RtsegError(f"--batch {self.batch} with {len(self.sources)} --source: the "
                             "batch is one frame per source; drop --batch or give that many")


def parse_size(text: str) -> tuple[int, int]:
    """`HxW` (e.g. 360x640) -> (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RtsegError(f"size {text!r} is not HxW, e.g. 360x640") from None
    if h < 1 or w < 1:
        raise RtsegError(f"size {text!r} must be positive")
    return h, w


def parse_mask_size(text: str) -> str | tuple[int, int]:
    """--mask-size: "frame" (each frame's own size), "input" (the network's input size,
    no upsampling) or `HxW` -> (H, W)."""
    if text in MASK_SIZES:
        return text
    try:
        return parse_size(text)
    except RtsegError:
        raise RtsegError(f"unknown --mask-size {text!r}: use frame, input or HxW (e.g. "
                         "540x960)") from None


@dataclass(frozen=True)
class CompileConfig:
    """`rtseg compile`: which engine to build from which checkpoint, and its parity gate.

    format auto: TensorRT when importable and a GPU is present, else AOTInductor on CUDA,
    else OpenVINO on the CPU. precision None: fp16 on CUDA, auto for OpenVINO (bf16 where
    the CPU has BF16, else fp32), fp32 otherwise; bf16 and int8 (calibrated on `calib`) are
    OpenVINO's. height / width None: the checkpoint's input size. frames: parity frames
    (generated scenes, or the images of `calib`); calib_labels: class-index PNGs of the
    calib images (the gate then also compares mIoU); threshold: minimum mask agreement in
    percent (None: 99, 99.5 for bf16, 97 for int8; int8 with labels: mIoU within 1 point
    of eager's instead).
    """

    checkpoint: str
    format: str = "auto"
    precision: str | None = None
    height: int | None = None
    width: int | None = None
    batch: int = 1
    dynamic: bool = False
    out: str = "engines"
    name: str | None = None
    device: str = "auto"
    calib: str | None = None
    frames: int = 8
    threshold: float | None = None
    workspace_gb: float = 4.0
    calib_labels: str | None = None

    def __post_init__(self) -> None:
        check_choice("--format", self.format, COMPILE_FORMATS)
        if self.precision not in (None, "fp16", "fp32", "bf16", "int8", "auto"):
            raise RtsegError(f"unknown --precision {self.precision!r}: use fp16, fp32, bf16, "
                             "int8 or auto")
        if self.precision == "int8" and not self.calib:
            raise RtsegError("--precision int8 needs --calib DIR: a folder of real frames "
                             "(like the camera's) to calibrate the quantisation on")
        if self.calib_labels and not self.calib:
            raise RtsegError("--calib-labels needs --calib DIR: the images the labels belong to")
        if self.batch < 1:
            raise RtsegError(f"--batch must be >= 1, got {self.batch}")
