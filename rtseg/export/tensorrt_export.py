"""ONNX -> TensorRT engine with the TensorRT 10/11 Python API (behind the `tensorrt` extra).

TensorRT 11 removed weakly-typed networks and BuilderFlag.FP16: precision comes from the
graph. So FP16 exports an FP16 ONNX graph (from a half model) and builds it as a
strongly-typed network; FP32 builds the FP32 graph the same way. Workspace limit,
optimization profile for dynamic shapes, and a timing cache persisted beside the engines.
Written against NVIDIA's documented TensorRT 10/11 Python API.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import nn

from rtseg.errors import RtsegError
from rtseg.export.onnx_export import INPUT, export_onnx
from rtseg.export.target import ExportTarget

MAX_DYNAMIC = (8, 1024, 2048)  # batch, height, width upper bounds of the dynamic profile
TIMING_CACHE = "tensorrt.timing-cache"  # file name, in the engines' folder


def export_tensorrt(model: nn.Module, target: ExportTarget) -> tuple:
    """Write a serialized engine of `model` ((N,3,H,W) -> (N,C,H,W)) to `target.path`;
    returns (inputs, outputs) tensor specs. The timing cache is kept in `target.cache_dir`
    (None: not kept)."""
    trt = _import_tensorrt()
    path = target.path
    onnx_path = path.with_name(path.name + ".onnx")
    try:
        specs = export_onnx(model, replace(target, path=onnx_path))
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(
            1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        _parse(trt, network, logger, onnx_path)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     int(target.workspace_gb * (1 << 30)))
        cache_path = target.cache_dir / TIMING_CACHE if target.cache_dir else None
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path
                                           and cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        if target.dynamic:
            config.add_optimization_profile(_profile(builder, target.batch, target.size))
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RtsegError("TensorRT could not build the engine (see its log above)")
        path.write_bytes(bytes(serialized))
        if cache_path is not None:
            cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    finally:
        onnx_path.unlink(missing_ok=True)
    return specs


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise RtsegError("TensorRT is not installed: pip install 'rtseg[tensorrt]' (NVIDIA's "
                         "wheels), or compile --format onnx / aoti") from None
    return trt


def _parse(trt, network, logger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RtsegError(f"TensorRT could not parse the ONNX graph: {errors}")


def _profile(builder, batch: int, size: tuple[int, int]):
    """min 1x3x32x32, opt = the compile shape, max MAX_DYNAMIC."""
    profile = builder.create_optimization_profile()
    b, h, w = MAX_DYNAMIC
    profile.set_shape(INPUT, (1, 3, 32, 32), (batch, 3, *size), (max(b, batch), 3, h, w))
    return profile
