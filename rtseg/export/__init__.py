"""`rtseg compile`: checkpoint -> engine file + manifest, gated by parity with eager FP32.

One compiler per format (onnx_export, aoti_export, tensorrt_export, torch_tensorrt_export);
the new engine is run through `rtseg.backends` for the gate. Files are written under
temporary names and renamed only when complete, so a failed compile leaves nothing
half-written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from rtseg.config import CompileConfig
from rtseg.errors import RtsegError
from rtseg.manifest import Manifest, write_manifest

log = logging.getLogger(__name__)
SUFFIX = {"onnx": ".onnx", "tensorrt": ".engine", "aoti": ".pt2", "torch-tensorrt": ".pt2"}


@dataclass(frozen=True)
class CompileResult:
    """The manifest written and where."""

    manifest: Manifest
    path: Path


def compile_checkpoint(cfg: CompileConfig) -> CompileResult:
    """Build the engine `cfg` asks for, run the parity gate, write NAME.<ext> + NAME.json.

    Raises RtsegError when the gate fails (the manifest is written and says so).
    """
    from rtseg.checkpoint import load_checkpoint
    from rtseg.device import pick_device

    ckpt = load_checkpoint(cfg.checkpoint)
    device = pick_device(cfg.device)
    fmt = resolve_format(cfg.format, device)
    precision = cfg.precision or ("fp16" if device.type == "cuda" else "fp32")
    if precision == "fp16" and device.type != "cuda":
        raise RtsegError("fp16 engines need a CUDA device here: use --precision fp32 on the CPU")
    size = (cfg.height or ckpt.meta.input_size[0], cfg.width or ckpt.meta.input_size[1])
    if size[0] % 32 or size[1] % 32:
        raise RtsegError(f"--height/--width must be multiples of 32, got {size}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.name or f"{_stem(ckpt)}-{fmt}-{precision}-b{cfg.batch}-{size[0]}x{size[1]}"
    engine = out / f"{name}{SUFFIX[fmt]}"
    manifest = _build(cfg, ckpt, device, fmt, precision, size, engine)
    manifest = replace(manifest, parity=_gate(cfg, ckpt, manifest, engine, device))
    path = write_manifest(out / f"{name}.json", manifest)
    if not manifest.parity["passed"]:
        raise RtsegError(f"parity gate failed for {engine}: masks agree on "
                         f"{manifest.parity['mask_agreement_pct']:.2f}% of pixels, below "
                         f"{cfg.threshold}% (figures in {path})")
    return CompileResult(manifest, path)


def resolve_format(name: str, device) -> str:
    """auto -> tensorrt (importable + GPU), aoti (GPU), onnx (CPU); others as given."""
    if name != "auto":
        return name
    if device.type == "cuda":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "aoti"
        return "tensorrt"
    return "onnx"


def _build(cfg, ckpt, device, fmt: str, precision: str, size, engine: Path) -> Manifest:
    """Export to a temporary file, rename when complete; the manifest without parity."""
    from rtseg.manifest import engine_metadata

    tmp = engine.with_name(f"{engine.stem}.partial{engine.suffix}")  # aoti wants .pt2
    try:
        specs = _export(cfg, ckpt, device, fmt, precision, size, tmp)
        tmp.replace(engine)
    finally:
        tmp.unlink(missing_ok=True)
    meta = ckpt.meta
    return Manifest(
        format=fmt, precision=precision, engine=engine.name, inputs=specs[0],
        outputs=specs[1], classes=meta.classes, drivable_classes=meta.drivable,
        mean=meta.mean, std=meta.std, input_size=size, binary=meta.binary,
        model=meta.model, checkpoint_sha256=ckpt.sha256, palette=meta.palette,
        dynamic=cfg.dynamic, **engine_metadata(device))


def _export(cfg, ckpt, device, fmt, precision, size, path: Path):
    half = precision == "fp16"
    model = ckpt.build("cpu")
    channels = ckpt.meta.out_channels
    if fmt == "onnx":
        from rtseg.export.onnx_export import export_onnx

        return export_onnx(model, path, cfg.batch, size, channels, half, cfg.dynamic, device)
    if fmt == "aoti":
        from rtseg.export.aoti_export import export_aoti

        return export_aoti(model, path, cfg.batch, size, channels, half, cfg.dynamic, device)
    if fmt == "tensorrt":
        from rtseg.export.tensorrt_export import build_tensorrt

        return build_tensorrt(model, path, cfg, size, channels, half, device)
    from rtseg.export.torch_tensorrt_export import export_torch_tensorrt

    return export_torch_tensorrt(model, path, cfg.batch, size, channels, half, cfg.dynamic,
                                 device)


def _gate(cfg, ckpt, manifest: Manifest, engine: Path, device) -> dict:
    from rtseg.backends import backend_for_manifest
    from rtseg.backends.preprocess import Preprocessor
    from rtseg.export.parity import parity_frames, parity_gate

    backend = backend_for_manifest(manifest, engine, device)
    try:
        frames = parity_frames(max(cfg.frames, cfg.batch), cfg.calib)
        prepare = Preprocessor(manifest.input_size, manifest.mean, manifest.std)
        figures = parity_gate(ckpt.build("cpu"), backend, frames, prepare,
                              len(manifest.classes), cfg.threshold, cfg.batch)
    finally:
        backend.close()
    log.info("parity: %.3f%% mask agreement, max logit error %.2e, mIoU vs eager %.4f",
             figures["mask_agreement_pct"], figures["max_logit_error"], figures["miou_vs_eager"])
    return figures


def _stem(ckpt) -> str:
    return ckpt.path.stem if ckpt.path else ckpt.meta.model
