"""`rtseg doctor`: what this machine gives rtseg, like `ros2 doctor --report`.

One `Check` per thing the commands depend on: Python and rtseg; torch and CUDA; the CPU's
vector extensions (they decide OpenVINO's precision and the engines' speed); each engine
runtime and what `--format auto` / `--engine auto` picks here; OpenCV and its video I/O
backends (FFMPEG opens files and rtsp:// streams, V4L2 cameras) and the cameras present;
ZeroMQ (CURVE, ipc://) and msgpack; the packages of the tools (record, serve, foxglove).

A check's status: "ok"; "note" (an optional part absent: what it costs and how to get
it); "warn" (present but limited: a command will fail or fall back); "error" (a
dependency every run needs is broken: `rtseg doctor` exits 1). Each package is imported,
so a broken install shows as the error its import raises.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

STATUSES = ("ok", "note", "warn", "error")


@dataclass(frozen=True)
class Check:
    """One line of the report: `area` (e.g. "engine openvino"), `status` (STATUSES),
    `detail` (what was found) and `hint` (what to do, for anything but ok)."""

    area: str
    status: str
    detail: str
    hint: str = ""


def run_checks() -> list[Check]:
    """Every check, in report order."""
    checks = [_python()]
    torch_check, cuda = _torch()
    checks += [torch_check, _cpu(), *_engines(cuda), *_video(), *_wire(), *_tools()]
    return checks


def format_report(checks: list[Check]) -> str:
    """The checks as aligned lines, `hint`s indented under theirs, and a last line
    counting warnings and errors."""
    width = max(len(c.area) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:5s}  {c.area:{width}s}  {c.detail}")
        if c.hint:
            lines.append(f"{'':5s}  {'':{width}s}  -> {c.hint}")
    counts = {s: sum(c.status == s for c in checks) for s in ("warn", "error")}
    lines.append(f"{len(checks)} checks: {counts['error']} errors, {counts['warn']} warnings")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict:
    """The report as one JSON-able object: `checks` (a dict per check) and `errors`."""
    return {"checks": [asdict(c) for c in checks],
            "errors": sum(c.status == "error" for c in checks)}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _import(module: str):
    """(module, None) or (None, the import's error in one line)."""
    try:
        return importlib.import_module(module), None
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def _python() -> Check:
    return Check("python", "ok", f"Python {platform.python_version()} ({sys.executable}), "
                 f"rtseg {_version('rtseg') or 'from source'}, {platform.platform()}")


def _torch() -> tuple[Check, bool]:
    """The torch check and whether a CUDA GPU is usable."""
    torch, problem = _import("torch")
    if torch is None:
        return Check("torch", "error", problem, "pip install torch torchvision"), False
    built = torch.version.cuda
    if torch.cuda.is_available():
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("torch", "ok", f"torch {torch.__version__}, CUDA {built}: {gpus}"), True
    detail = f"torch {torch.__version__}, " + (
        f"built for CUDA {built} but no GPU is visible" if built else "a CPU-only build")
    return Check("torch", "ok", detail + ": the node runs on the CPU (--device cpu)"), False


def _cpu() -> Check:
    from rtseg.device import INT8_ADVICE, cpu_has_bf16, describe_cpu, int8_beats_auto

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    bf16 = cpu_has_bf16()
    detail = (f"{describe_cpu()}, {cores} cores for this process; "
              + ("native BF16: OpenVINO engines default to bf16" if bf16 else
                 "no native BF16 (AVX512-BF16 / AMX): OpenVINO engines default to fp32"))
    if int8_beats_auto():  # a faster engine than auto's is one flag away
        return Check("cpu", "note", detail + ", though int8 is faster (VNNI)",
                     INT8_ADVICE[0].upper() + INT8_ADVICE[1:])
    return Check("cpu", "ok", detail)


def _engines(cuda: bool) -> list[Check]:
    """One check per engine runtime, then what auto picks on this machine's devices."""
    checks = [_runtime("onnxruntime", "onnx", lambda m: "providers "
                       + ", ".join(p.removesuffix("ExecutionProvider")
                                   for p in m.get_available_providers())),
              _runtime("openvino", "openvino", lambda m: "devices "
                       + ", ".join(m.Core().available_devices)),
              _aoti(cuda)]
    for module, fmt in (("tensorrt", "tensorrt"), ("torch_tensorrt", "torch-tensorrt")):
        found, problem = _import(module)
        if found is None and f"No module named '{module}'" in problem:
            checks.append(Check(f"engine {fmt}", "note", "not installed",
                                'GPU engines: pip install -e ".[tensorrt]" on a CUDA machine'))
        elif found is None:  # installed, but broken (a missing libnvinfer, say)
            checks.append(Check(f"engine {fmt}", "warn", f"its import fails: {problem}",
                                "install the TensorRT libraries matching the Python package "
                                "(NVIDIA's TensorRT install guide), or uninstall it"))
        else:
            checks.append(Check(f"engine {fmt}", "ok" if cuda else "warn",
                                f"{module} {getattr(found, '__version__', '?')}"
                                + ("" if cuda else ": installed, but it needs a CUDA GPU")))
    return checks + [_auto(cuda)]


def _runtime(module: str, fmt: str, describe) -> Check:
    found, problem = _import(module)
    if found is None:
        return Check(f"engine {fmt}", "warn", problem, f"pip install {module}")
    return Check(f"engine {fmt}", "ok", f"{module} {_version(module) or '?'}, "
                 f"{describe(found)}")


def _aoti(cuda: bool) -> Check:
    """AOTInductor compiles C++ (and CUDA) code at `rtseg compile` time: it needs a C++
    compiler, $CXX or one on the PATH."""
    compiler = os.environ.get("CXX") or next(
        (found for name in ("g++", "c++", "clang++") if (found := shutil.which(name))), None)
    if compiler is None:
        return Check("engine aoti", "warn", "no C++ compiler ($CXX, g++, c++, clang++)",
                     "install g++ (apt install g++) to compile AOTInductor engines")
    return Check("engine aoti", "ok", f"torch AOTInductor, compiler {compiler}"
                 + (", CUDA" if cuda else ", CPU"))


def _auto(cuda: bool) -> Check:
    """What `rtseg compile --format auto` and `rtseg run --engine auto` build here."""
    import torch

    from rtseg.export import resolve_format, resolve_precision

    picks = []
    for device in ("cpu", "cuda") if cuda else ("cpu",):
        dev = torch.device(device)
        fmt = resolve_format("auto", dev)
        picks.append(f"{device}: {fmt} {resolve_precision(fmt, dev, None)}")
    return Check("engine auto", "ok", "--format auto / --engine auto build " + "; ".join(picks))


def _video() -> list[Check]:
    """OpenCV, its video I/O backends, and the V4L2 cameras (Linux)."""
    cv2, problem = _import("cv2")
    if cv2 is None:
        return [Check("opencv", "error", problem, "pip install opencv-python-headless")]
    from cv2 import videoio_registry as registry

    def names(ids) -> list[str]:  # the backends listed that are built in or load as plugins
        return [registry.getBackendName(b) for b in ids if registry.hasBackend(b)]

    streams, cameras = names(registry.getStreamBackends()), names(registry.getCameraBackends())
    checks = [Check("opencv", "ok", f"OpenCV {cv2.__version__}; files and streams: "
                    f"{', '.join(streams) or 'none'}; cameras: {', '.join(cameras) or 'none'}")]
    if "FFMPEG" not in streams:
        checks.append(Check("opencv ffmpeg", "warn", "OpenCV without FFMPEG: most video files "
                            "and rtsp:// streams will not open",
                            "pip install opencv-python-headless (its wheels bundle FFMPEG)"))
    from rtseg.stream.live import FFMPEG_OPTIONS_ENV

    if (options := os.environ.get(FFMPEG_OPTIONS_ENV)) is not None:
        checks.append(Check("ffmpeg options", "note", f"{FFMPEG_OPTIONS_ENV}={options!r}: "
                            "every stream URL opens with these FFmpeg options (OpenCV's "
                            "default rtsp_flags prefer_tcp only where they name it)",
                            f"unset {FFMPEG_OPTIONS_ENV} for OpenCV's defaults; per run: "
                            "rtseg run --stream-option NAME=VALUE"))
    checks.append(_cameras())
    return checks


def _cameras() -> Check:
    """The /dev/videoN devices and their V4L2 names: camera N is `--source cameraN`."""
    if not Path("/sys/class/video4linux").is_dir():
        return Check("cameras", "note", "none found (no /sys/class/video4linux)",
                     "plug in a camera, or run on a video file, a stream or --source demo")
    found = []
    for dev in sorted(Path("/sys/class/video4linux").glob("video*"),
                      key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else -1):
        label = (dev / "name").read_text().strip() if (dev / "name").is_file() else "?"
        found.append(f"camera{dev.name[5:]} = /dev/{dev.name} ({label})")
    if not found:
        return Check("cameras", "note", "none found",
                     "plug in a camera, or run on a video file, a stream or --source demo")
    return Check("cameras", "ok", "; ".join(found))


def _wire() -> list[Check]:
    """ZeroMQ with what `--curve-secret` and ipc:// endpoints need, and msgpack."""
    zmq, problem = _import("zmq")
    if zmq is None:
        return [Check("zeromq", "error", problem, "pip install pyzmq")]
    curve, ipc = zmq.has("curve"), zmq.has("ipc")
    checks = [Check("zeromq", "ok" if curve and ipc else "warn",
                    f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}; CURVE "
                    f"{'yes' if curve else 'no'}, ipc:// {'yes' if ipc else 'no'}",
                    "" if curve and ipc else "--curve-secret needs a libzmq with CURVE "
                    "(libsodium); pip install --force-reinstall pyzmq")]
    msgpack, problem = _import("msgpack")
    checks.append(Check("msgpack", "ok", f"msgpack {_version('msgpack')}") if msgpack else
                  Check("msgpack", "error", problem, "pip install msgpack"))
    return checks


TOOL_PACKAGES = (  # (area, module, distribution, the commands that need it, how to get it)
    ("record", "mcap_ros2", "mcap-ros2-support", "rtseg record / play / info",
     "pip install mcap mcap-ros2-support"),
    ("serve", "fastapi", "fastapi", "rtseg serve", "pip install fastapi uvicorn"),
    ("serve uvicorn", "uvicorn", "uvicorn", "rtseg serve", "pip install uvicorn"),
    ("serve metrics", "prometheus_client", "prometheus-client", "rtseg serve",
     "pip install prometheus-client"),
    ("foxglove", "foxglove", "foxglove-sdk", "rtseg foxglove", 'pip install -e ".[foxglove]"'),
)


def _tools() -> list[Check]:
    checks = []
    for area, module, dist, commands, hint in TOOL_PACKAGES:
        found, problem = _import(module)
        if found is None:
            status = "note" if area == "foxglove" else "warn"
            checks.append(Check(area, status, f"{commands}: {problem}", hint))
        else:
            checks.append(Check(area, "ok", f"{dist} {_version(dist) or '?'}: {commands}"))
    return checks
