"""Checkpoint model -> torch-tensorrt (dynamo path) program saved as .pt2 (behind the extra).

FP16 comes from a half model (the graph's own dtype), FP32 otherwise. Verified here:
nothing (torch-tensorrt needs TensorRT, which this project's machines cannot install);
written against torch-tensorrt 2.x's documented `compile(ir="dynamo")` and `save`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtseg.errors import RtsegError, type_name
from rtseg.export.tensorrt_export import MAX_DYNAMIC
from rtseg.manifest import io_specs


def export_torch_tensorrt(model, path: Path, batch: int, size: tuple[int, int], channels: int,
                          half: bool, dynamic: bool, device) -> tuple:
    """Write the compiled program to `path` (.pt2); returns (inputs, outputs) specs."""
    try:
        import torch_tensorrt
    except ImportError:
        raise RtsegError("torch-tensorrt is not installed: pip install 'rtseg[tensorrt]'") from None
    if torch.device(device).type != "cuda":
        raise RtsegError("torch-tensorrt engines are built on a CUDA device: --device cuda")
    dtype = torch.float16 if half else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    example = torch.zeros(batch, 3, *size, device=device, dtype=dtype)
    spec = example
    if dynamic:
        b, h, w = MAX_DYNAMIC
        spec = torch_tensorrt.Input(min_shape=(1, 3, 32, 32), opt_shape=tuple(example.shape),
                                    max_shape=(max(b, batch), 3, h, w), dtype=dtype)
    try:
        program = torch_tensorrt.compile(model, ir="dynamo", inputs=[spec],
                                         enabled_precisions={dtype})
        torch_tensorrt.save(program, str(path), output_format="exported_program",
                            inputs=[example])
    except Exception as exc:  # the compiler raises many types; name the cause
        raise RtsegError(f"torch-tensorrt compile failed: {type_name(exc)}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return io_specs(batch, size, channels, half, dynamic)
