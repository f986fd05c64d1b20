"""The commands' configurations (`rtseg run`, `rtseg bench`, `rtseg compile`): frozen
dataclasses built once from the flags, each checking its own values; and the choices the
flags offer."""

from __future__ import annotations

from dataclasses import dataclass

from rtseg.errors import RtsegError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"  # loopback unless the user asks (PROTOCOL.md)
ENGINE_FORMATS = ("onnx", "openvino", "aoti", "tensorrt", "torch-tensorrt")  # compile writes
COMPILE_FORMATS = ("auto", *ENGINE_FORMATS)  # rtseg compile --format
RUN_ENGINES = ("torch", "auto", "onnx", "openvino", "aoti", "tensorrt")  # run/bench --engine
OVERLAP_MODES = ("on", "off")  # run/bench --overlap
MASK_SIZES = ("frame", "input")  # run/bench --mask-size, besides HxW
PRECISIONS = ("fp16", "fp32", "bf16", "int8", "auto")  # compile/run/bench --precision


def check_choice(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    """A value outside `choices` is an error naming the flag and every choice."""
    if value not in choices:
        raise RtsegError(f"unknown {flag} {value!r}: use {', '.join(map(str, choices))}")


def check_precision(precision: str | None, calib: str | None, engine: str = "auto") -> None:
    """--precision: None (the format's default) or one of PRECISIONS; int8 needs `calib`
    (its calibration frames); run and bench take it for a compiled engine only."""
    if precision is None:
        return
    check_choice("--precision", precision, PRECISIONS)
    if engine == "torch":
        raise RtsegError(f"--precision {precision} is an engine's precision: add --engine "
                         "openvino (or auto, onnx, aoti, tensorrt); --engine torch runs the "
                         "checkpoint eagerly in FP32")
    if precision == "int8" and not calib:
        raise RtsegError("--precision int8 needs --calib DIR: a folder of real frames "
                         "(like the camera's) to calibrate the quantisation on")


def check_engine(engine: str, precision: str | None, calib: str | None) -> None:
    """--engine one of RUN_ENGINES, and a --precision that fits it (check_precision)."""
    check_choice("--engine", engine, RUN_ENGINES)
    check_precision(precision, calib, engine)


ROTATIONS = (0, 90, 180, 270)  # --rotate: degrees clockwise
FLIPS = ("none", "horizontal", "vertical")  # --flip: mirrored left-right, top-bottom


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
    stamps: str = "read"  # read: the wall clock at read | recorded: a recording's own
    source_fps: float = 30.0
    demo_size: tuple[int, int] = (360, 640)
    status_every: float = 5.0
    hwm: int = 4  # frames queued per subscriber (rtseg.stream.publishing.queue_messages)
    engine: str = "torch"  # torch (eager) | auto | onnx | aoti | tensorrt | openvino (cached)
    engine_cache: str = "engines/cache"
    calib: str | None = None  # real frames for the parity gate of a cache-compiled engine
    precision: str | None = None  # of a cache-compiled engine (None: the format's default)
    overlap: str = "on"  # host pipeline: publish a batch while the next infers (on | off)
    mask_size: str = "frame"  # published masks: frame | input (the network's) | HxW
    cuda_graphs: bool = True
    image_topic: bool = False  # also publish NAME/image (JPEG of the frame), rate-limited
    image_fps: float = 10.0
    image_width: int = 640  # JPEG width (frames narrower keep theirs)
    heartbeat_s: float = 1.0  # NAME/status period
    curve_secret: str | None = None  # CURVE server key pair file (rtseg keys)
    curve_clients: str | None = None  # folder of admitted client public keys
    rotate: int | tuple[int, ...] = 0  # degrees clockwise: one for all sources, or one each
    flip: str | tuple[str, ...] = "none"  # after turning: none | horizontal | vertical, same
    crop: str | tuple[str, ...] = ""  # then kept: "X,Y,W,H" ("": all), one or one per source
    capture_size: tuple[int, int] | None = None  # cameras: (H, W) to ask for (None: theirs)
    capture_fps: float | None = None
    capture_fourcc: str | None = None  # e.g. MJPG
    stream_options: tuple[str, ...] = ()  # stream URLs: FFmpeg options, NAME=VALUE each
    metrics_port: int | None = None  # GET /metrics for Prometheus on it (0: a free port)
    metrics_bind: str = "127.0.0.1"  # its address (non-loopback needs allow_remote)
    drivable: tuple[str, ...] = ()  # classes of the drivable mask ((): the model's)

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

    @property
    def rotations(self) -> tuple[int, ...]:
        """Degrees clockwise each source's frames are turned, one per source, in order."""
        return self._per_source("--rotate", self.rotate, 0)

    @property
    def flips(self) -> tuple[str, ...]:
        """How each source's frames are mirrored after turning, one per source, in order."""
        return self._per_source("--flip", self.flip, "none")

    @property
    def crops(self) -> tuple[tuple[int, int, int, int] | None, ...]:
        """The box of each source's turned frame kept, (x, y, w, h), or None for all."""
        return tuple(parse_crop(box) for box in self._per_source("--crop", self.crop, ""))

    def _per_source(self, flag: str, value, default) -> tuple:
        """`value` (one, or a tuple: empty, one, or one per source) -> one per source."""
        given = tuple(value) if isinstance(value, tuple) else (value,)
        if len(given) not in (0, 1, len(self.sources)):
            raise RtsegError(f"{len(given)} {flag} for {len(self.sources)} --source: give "
                             f"one {flag} for every source, or one per --source in order")
        return (given or (default,)) * len(self.sources) if len(given) < 2 else given

    def __post_init__(self) -> None:
        if not self.sources:
            raise RtsegError("no --source given: name at least one (camera0, a file, demo)")
        for degrees in self.rotations:
            check_choice("--rotate", degrees, ROTATIONS)
        for flip in self.flips:
            check_choice("--flip", flip, FLIPS)
        _ = self.crops  # parsed now: a bad --crop fails before anything opens
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
        check_engine(self.engine, self.precision, self.calib)
        check_choice("--overlap", self.overlap, OVERLAP_MODES)
        check_choice("--stamps", self.stamps, ("read", "recorded"))
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
    precision: str | None = None  # of a cache-compiled engine (None: the format's default)
    overlap: str = "on"  # host pipeline: publish a batch while the next infers (on | off)
    mask_size: str = "frame"  # published masks: frame | input (the network's) | HxW
    cuda_graphs: bool = True
    baseline: bool = True
    checkpoint: str | None = None
    rounds: int = 3

    def __post_init__(self) -> None:
        check_engine(self.engine, self.precision, self.calib)
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


def parse_crop(text: str) -> tuple[int, int, int, int] | None:
    """--crop "X,Y,W,H" (pixels: left, top, width, height; a W or H of 0 reaches the
    frame's right or bottom edge) -> (x, y, w, h); "" or a box of the whole frame -> None."""
    if not text:
        return None
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise RtsegError(f"--crop {text!r} is not X,Y,W,H: the box kept, in pixels (left, "
                         "top, width, height; W or H 0 reaches the edge), e.g. 0,0,0,880 "
                         "keeps the top 880 rows")
    if min(box) < 0:
        raise RtsegError(f"--crop {text!r}: X, Y, W and H must be >= 0")
    return None if box == (0, 0, 0, 0) else box


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
        check_precision(self.precision, self.calib)
        if self.calib_labels and not self.calib:
            raise RtsegError("--calib-labels needs --calib DIR: the images the labels belong to")
        if self.batch < 1:
            raise RtsegError(f"--batch must be >= 1, got {self.batch}")
