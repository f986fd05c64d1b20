"""The engine cache behind `rtseg run --engine auto|onnx|aoti|tensorrt|openvino`.

An engine is compiled once per key: checkpoint sha256, format, precision (the format's
default: fp16 on CUDA, OpenVINO's auto, else fp32), input shape, device name and compute
capability (for OpenVINO the CPU's name and capabilities), the versions of the libraries
it was built with and rtseg's graph revision (what a model exports to). An OpenVINO
engine is built in BF16 where the CPU has it; when BF16 fails the parity gate (a model
whose classes are close calls), in FP32 instead. A precision the user names (`--precision`:
int8 calibrated on `calib`, say) is built as named, and its failed gate is an error. The
gate runs on generated road scenes unless `calib` names a folder of real frames (then that
folder, as given, is part of the key).
A cached engine whose key no longer fits (new torch, another GPU, ...) is rebuilt, and the
log says which part of the key changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path

from rtseg.config import CompileConfig
from rtseg.manifest import read_manifest

log = logging.getLogger(__name__)

# Bumped when the same checkpoint exports to another graph, so that cached engines of the
# old one are rebuilt: 2 = the fine LR-ASPP's full-resolution upsampling as a grouped
# convolution and a pixel shuffle (rtseg.models.upsample).
GRAPH_REVISION = 2


def resolve_model(model: str | None, engine: str, device: str, cache_dir: str | Path,
                  batch: int = 1, input_size: tuple[int, int] | None = None,
                  calib: str | None = None, precision: str | None = None) -> str:
    """What `rtseg run` / `rtseg bench` load: an engine or checkpoint as given (engine
    `torch` runs a checkpoint eagerly), else the cached engine of `engine` format and
    `precision` (None: the format's default) for this checkpoint, batch and input size,
    compiled on first use. None means the demo."""
    from rtseg.backends import is_engine
    from rtseg.errors import RtsegError

    model = model or "demo"
    if precision is not None and is_engine(model):
        raise RtsegError(f"--precision {precision} builds an engine from a checkpoint, and "
                         f"{model} is an engine already (built with its own precision): drop "
                         "--precision, or give the checkpoint")
    if engine == "torch" or is_engine(model):
        return model
    return str(cached_engine(model, engine, device, cache_dir, batch=batch,
                             input_size=input_size, calib=calib, precision=precision))


def engine_model(model: str | None, engine: str, device: str, cache_dir: str | Path,
                 calib: str | None = None, precision: str | None = None,
                 batch: int = 1) -> str:
    """`resolve_model` for a command's --engine / --engine-cache / --calib / --precision
    (serve, eval, predict, the Python API), once `engine` and `precision` are checked
    (an unknown one, a precision for eager torch, int8 without calib: one-line errors)."""
    from rtseg.config.commands import check_engine

    check_engine(engine, precision, calib)
    return resolve_model(model, engine, device, cache_dir, batch=batch, calib=calib,
                         precision=precision)


def cached_engine(checkpoint: str, engine: str, device: str,
                  cache_dir: str | Path = "engines/cache", batch: int = 1,
                  input_size: tuple[int, int] | None = None, calib: str | None = None,
                  precision: str | None = None) -> Path:
    """The manifest of a cached engine for `checkpoint` with a static `batch` and
    `input_size` (H, W; None: the checkpoint's) in `precision` (None / auto: the format's
    default), compiling it on the first call, its parity gate on the images of `calib`
    (None: generated scenes)."""
    from rtseg.checkpoint import load_checkpoint
    from rtseg.device import pick_device
    from rtseg.export import (
        ParityGateError,
        build_metadata,
        compile_checkpoint,
        hint_int8,
        resolve_format,
        resolve_precision,
    )

    ckpt = load_checkpoint(checkpoint)
    dev = pick_device(device)
    fmt = resolve_format(engine, dev)
    asked, precision = precision, resolve_precision(fmt, dev, precision)
    size = tuple(input_size or ckpt.meta.input_size)
    key = {"checkpoint_sha256": ckpt.sha256, "format": fmt, "precision": precision,
           "input_size": list(size), "batch": batch, "graph_revision": GRAPH_REVISION,
           **build_metadata(fmt, dev, precision)}
    if calib:
        key["calib"] = str(calib)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir)
    manifest = folder / f"{ckpt.sha256[:12]}-{fmt}-{digest}.json"
    # an engine its parity gate refused is kept for inspection, and built again here
    if manifest.is_file() and not read_manifest(manifest).failed_gate:
        log.info("engine cache: using %s", manifest)
        return manifest
    _explain_miss(folder, ckpt.sha256, fmt, key)
    hint_int8(fmt, asked, precision)
    cfg = CompileConfig(checkpoint=str(ckpt.path), format=fmt, precision=precision,
                        out=str(folder), name=manifest.stem, device=device, batch=batch,
                        height=size[0], width=size[1], calib=calib)
    try:
        result = compile_checkpoint(cfg)
    except ParityGateError as exc:
        if precision != "bf16" or asked not in (None, "auto"):
            raise
        log.warning("engine cache: %s; building fp32 instead%s", exc, "" if calib else
                    " (the gate ran on generated scenes: give `--calib DIR`, a folder of "
                    "real frames like the camera's, to gate the BF16 engine on those)")
        result = compile_checkpoint(replace(cfg, precision="fp32"))
    (folder / f"{manifest.stem}.key.json").write_text(json.dumps(key, indent=1) + "\n")
    return result.path


def _explain_miss(folder: Path, sha: str, fmt: str, key: dict) -> None:
    """Log why an earlier engine of this checkpoint and format does not fit any more."""
    for old in sorted(folder.glob(f"{sha[:12]}-{fmt}-*.key.json")):
        try:
            previous = json.loads(old.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        changed = sorted(k for k in key if previous.get(k) != key[k])
        log.info("engine cache: %s no longer fits (%s changed): rebuilding", old.name,
                 ", ".join(f"{k}: {previous.get(k)} -> {key[k]}" for k in changed))
        return
    log.info("engine cache: no %s engine for this checkpoint yet: compiling once", fmt)
