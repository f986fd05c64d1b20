"""Checkpoint model -> torch-tensorrt (dynamo path) program saved as .pt2 (behind the extra).

FP16 comes from a half model (the graph's own dtype), FP32 otherwise. Written against
torch-tensorrt 2.x's documented `compile(ir="dynamo")` and `save`.
"""

from __future__ import annotations

import torch
from torch import nn

from rtseg.errors import RtsegError, type_name
from rtseg.export.target import ExportTarget
from rtseg.export.tensorrt_export import MAX_DYNAMIC


def export_torch_tensorrt(model: nn.Module, target: ExportTarget) -> tuple:
    """Write the compiled program of `model` ((N,3,H,W) -> (N,C,H,W)) to `target.path`
    (.pt2); returns (inputs, outputs) specs."""
    try:
        import torch_tensorrt
    except ImportError:
        raise RtsegError("torch-tensorrt is not installed: pip install 'rtseg[tensorrt]'") from None
    if torch.device(target.device).type != "cuda":
        raise RtsegError("torch-tensorrt engines are built on a CUDA device: --device cuda")
    model, example = target.prepare(model)
    spec = example
    if target.dynamic:
        b, h, w = MAX_DYNAMIC
        spec = torch_tensorrt.Input(min_shape=(1, 3, 32, 32), opt_shape=tuple(example.shape),
                                    max_shape=(max(b, target.batch), 3, h, w),
                                    dtype=target.dtype)
    try:
        program = torch_tensorrt.compile(model, ir="dynamo", inputs=[spec],
                                         enabled_precisions={target.dtype})
        torch_tensorrt.save(program, str(target.path), output_format="exported_program",
                            inputs=[example])
    except Exception as exc:  # the compiler raises many types; name the cause
        raise RtsegError(f"torch-tensorrt compile failed: {type_name(exc)}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return target.specs()
