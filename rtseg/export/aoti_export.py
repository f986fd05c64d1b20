"""Checkpoint model -> AOTInductor package (.pt2): `torch.export` + `aoti_compile_and_package`.

Compiled ahead of time into a shared library for the CPU or a CUDA device (FP16 on CUDA
when asked); runs without Python model code through `torch._inductor.aoti_load_package`.
"""

from __future__ import annotations

import torch
from torch import nn

from rtseg.errors import RtsegError, type_name
from rtseg.export.target import ExportTarget


def export_aoti(model: nn.Module, target: ExportTarget) -> tuple:
    """Write the package of `model` ((N,3,H,W) -> (N,C,H,W)) to `target.path` (must end
    in .pt2); returns (inputs, outputs) specs."""
    model, example = target.prepare(model)
    shapes = None
    if target.dynamic:
        shapes = {"x": {0: torch.export.Dim("batch", min=1, max=64),
                        2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}}
    try:
        with torch.inference_mode():
            program = torch.export.export(model, (example,), dynamic_shapes=shapes)
            torch._inductor.aoti_compile_and_package(program, package_path=str(target.path))
    except Exception as exc:  # inductor raises many types; name the cause
        raise RtsegError(f"AOTInductor compile failed: {type_name(exc)}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return target.specs()
