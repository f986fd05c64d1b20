"""`rtseg compile`: checkpoint -> engine file + manifest, gated by parity with eager FP32.

One compiler per format (onnx_export, aoti_export, tensorrt_export, torch_tensorrt_export,
openvino_export); the new engine is run through `rtseg.backends` for the gate. Files are
written under temporary names and renamed only when complete (an OpenVINO IR's .bin before
its .xml), so a failed compile leaves nothing half-written.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from rtseg.config import CompileConfig
from rtseg.errors import RtsegError
from rtseg.manifest import Manifest, write_manifest

log = logging.getLogger(__name__)
SUFFIX = {"onnx": ".onnx", "tensorrt": ".engine", "aoti": ".pt2", "torch-tensorrt": ".pt2",
          "openvino": ".xml"}
# format -> (module of rtseg.export, its `export_X(model, ExportTarget)`), imported when used
EXPORTERS = {"onnx": ("onnx_export", "export_onnx"), "aoti": ("aoti_export", "export_aoti"),
             "tensorrt": ("tensorrt_export", "export_tensorrt"),
             "torch-tensorrt": ("torch_tensorrt_export", "export_torch_tensorrt"),
             "openvino": ("openvino_export", "export_openvino")}
COMPANIONS = {"openvino": (".bin",)}  # files written beside the engine, same stem
OPENVINO_ONLY = ("bf16", "int8", "auto")


class ParityGateError(RtsegError):
    """The engine was built but computes other masks than eager FP32 (manifest written)."""


@dataclass(frozen=True)
class CompileResult:
    """The manifest written and where."""

    manifest: Manifest
    path: Path


def compile_checkpoint(cfg: CompileConfig) -> CompileResult:
    """Build the engine `cfg` asks for, run the parity gate, write NAME.<ext> + NAME.json.

    Raises ParityGateError (an RtsegError) when the gate fails (the manifest is written and
    says so).
    """
    from rtseg.checkpoint import load_checkpoint
    from rtseg.device import pick_device

    ckpt = load_checkpoint(cfg.checkpoint)
    device = pick_device(cfg.device)
    fmt = resolve_format(cfg.format, device)
    precision = resolve_precision(fmt, device, cfg.precision)
    hint_int8(fmt, cfg.precision, precision)
    size = (cfg.height or ckpt.meta.input_size[0], cfg.width or ckpt.meta.input_size[1])
    if size[0] % 32 or size[1] % 32:
        raise RtsegError(f"--height/--width must be multiples of 32, got {size}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.name or f"{_stem(ckpt)}-{fmt}-{precision}-b{cfg.batch}-{size[0]}x{size[1]}"
    engine = out / f"{name}{SUFFIX[fmt]}"
    samples = _parity_samples(cfg)  # read and checked before the (long) build
    manifest = _build(cfg, ckpt, device, fmt, precision, size, engine)
    parity, runtime = _gate(cfg, ckpt, manifest, engine, device, samples)
    manifest = replace(manifest, parity=parity, runtime={**manifest.runtime, **runtime})
    path = write_manifest(out / f"{name}.json", manifest)
    if not manifest.parity["passed"]:
        from rtseg.export.parity import describe_failure

        raise ParityGateError(f"parity gate failed for {engine}: {describe_failure(parity)} "
                              f"(figures in {path})")
    return CompileResult(manifest, path)


def resolve_format(name: str, device) -> str:
    """auto -> tensorrt (importable + GPU), aoti (GPU), openvino (CPU; onnx without
    OpenVINO); others as given."""
    if name != "auto":
        return name
    module, fallback = ("tensorrt", "aoti") if device.type == "cuda" else ("openvino", "onnx")
    try:
        __import__(module)
    except ImportError:
        return fallback
    return module


def resolve_precision(fmt: str, device, precision: str | None) -> str:
    """None -> fp16 on CUDA, auto for OpenVINO (bf16 where the CPU has it, else fp32),
    fp32 otherwise; bf16 / int8 / auto only for OpenVINO, fp16 only on CUDA."""
    if fmt == "openvino":
        from rtseg.export.openvino_export import resolve_precision as openvino_precision

        return openvino_precision(precision)
    if precision in OPENVINO_ONLY:
        raise RtsegError(f"--precision {precision} is for OpenVINO engines: use --format "
                         f"openvino, or fp16 / fp32 for {fmt}")
    precision = precision or ("fp16" if device.type == "cuda" else "fp32")
    if precision == "fp16" and device.type != "cuda":
        raise RtsegError("fp16 engines need a CUDA device here: use --precision fp32 on the CPU")
    return precision


def hint_int8(fmt: str, asked: str | None, precision: str) -> None:
    """Log where the user left the precision to OpenVINO's auto and got fp32 on a CPU where
    int8 runs about twice as fast (VNNI without BF16)."""
    from rtseg.device import INT8_HINT, int8_beats_auto

    if fmt == "openvino" and asked in (None, "auto") and precision == "fp32" \
            and int8_beats_auto():
        log.info("%s", INT8_HINT)


def build_metadata(fmt: str, device, precision: str) -> dict:
    """The manifest's versions, device (and runtime) entries for an engine built here."""
    from rtseg.manifest import engine_metadata

    meta = engine_metadata(device)
    if fmt == "openvino":
        from rtseg.export.openvino_export import openvino_metadata

        meta = openvino_metadata(meta, precision)
    return meta


def _build(cfg, ckpt, device, fmt: str, precision: str, size, engine: Path) -> Manifest:
    """Export to temporary files, rename when complete; the manifest without parity."""
    tmp = engine.with_name(f"{engine.stem}.partial{engine.suffix}")  # aoti wants .pt2
    companions = [(tmp.with_suffix(s), engine.with_suffix(s)) for s in COMPANIONS.get(fmt, ())]
    try:
        specs = _export(cfg, ckpt, device, fmt, precision, size, tmp)
        for partial, final in companions:
            partial.replace(final)
        tmp.replace(engine)
    finally:
        for partial in (tmp, *(p for p, _ in companions)):
            partial.unlink(missing_ok=True)
    meta = ckpt.meta
    return Manifest(
        **meta.label_fields(), format=fmt, precision=precision, engine=engine.name,
        inputs=specs[0], outputs=specs[1], input_size=size, binary=meta.binary,
        model=meta.model, checkpoint_sha256=ckpt.sha256, dynamic=cfg.dynamic,
        **build_metadata(fmt, device, precision))


def _export(cfg, ckpt, device, fmt, precision, size, path: Path):
    """Run the exporter of `fmt` on the checkpoint's model; (inputs, outputs) specs."""
    from rtseg.export.target import ExportTarget
    from rtseg.models.upsample import use_phase_upsampling

    module, function = EXPORTERS[fmt]
    exporter = getattr(importlib.import_module(f"rtseg.export.{module}"), function)
    meta = ckpt.meta
    target = ExportTarget(path=path, batch=cfg.batch, size=size, channels=meta.out_channels,
                          precision=precision, dynamic=cfg.dynamic, device=device,
                          workspace_gb=cfg.workspace_gb, cache_dir=Path(cfg.out),
                          calib=cfg.calib, mean=meta.mean, std=meta.std,
                          calib_labels=cfg.calib_labels, calib_skip=max(cfg.frames, cfg.batch),
                          ignore_index=meta.ignore_index)
    model = ckpt.build("cpu")
    # ONNX Runtime runs bilinear Resize faster than the grouped convolution + pixel shuffle
    # that OpenVINO prefers for the same upsampling (rtseg.models.upsample)
    use_phase_upsampling(model, fmt != "onnx")
    return exporter(model, target)


def _parity_samples(cfg) -> tuple[list, list | None]:
    """The gate's frames (H, W, 3) uint8 BGR and, with --calib-labels, their (H, W) labels."""
    from rtseg.export.parity import parity_frames, parity_labels

    frames = parity_frames(max(cfg.frames, cfg.batch), cfg.calib)
    return frames, parity_labels(cfg.calib, cfg.calib_labels, frames) if cfg.calib_labels else None


def _gate(cfg, ckpt, manifest: Manifest, engine: Path, device, samples) -> tuple[dict, dict]:
    """The parity figures, and what the backend reports it ran with (OpenVINO's runtime)."""
    from rtseg.backends import backend_for_manifest
    from rtseg.backends.preprocess import Preprocessor
    from rtseg.export.parity import gate_thresholds, parity_gate

    frames, labels = samples
    backend = backend_for_manifest(manifest, engine, device)
    try:
        prepare = Preprocessor(manifest.input_size, manifest.mean, manifest.std)
        rule = gate_thresholds(manifest.precision, cfg.threshold, labels is not None)
        figures = parity_gate(ckpt.build("cpu"), backend, frames, prepare,
                              len(manifest.classes), rule["threshold_pct"], cfg.batch,
                              labels, rule["max_miou_drop"], ckpt.meta.ignore_index)
        runtime = backend.runtime_info
    finally:
        backend.close()
    log.info("parity: %.3f%% mask agreement, max logit error %.2e, mIoU vs eager %.4f%s",
             figures["mask_agreement_pct"], figures["max_logit_error"], figures["miou_vs_eager"],
             f", mIoU on labels {figures['miou_engine']:.2f} (eager {figures['miou_eager']:.2f})"
             if labels else "")
    return figures, runtime


def _stem(ckpt) -> str:
    return ckpt.path.stem if ckpt.path else ckpt.meta.model
