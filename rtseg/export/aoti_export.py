"""Checkpoint model -> AOTInductor package (.pt2): `torch.export` + `aoti_compile_and_package`.

Compiled ahead of time into a shared library for the CPU or a CUDA device (FP16 on CUDA
when asked); runs without Python model code through `torch._inductor.aoti_load_package`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtseg.errors import RtsegError, type_name
from rtseg.manifest import io_specs


def export_aoti(model, path: Path, batch: int, size: tuple[int, int], channels: int,
                half: bool, dynamic: bool, device) -> tuple:
    """Write the package to `path` (must end in .pt2); returns (inputs, outputs) specs."""
    dtype = torch.float16 if half else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    example = torch.zeros(batch, 3, *size, device=device, dtype=dtype)
    shapes = None
    if dynamic:
        shapes = {"x": {0: torch.export.Dim("batch", min=1, max=64),
                        2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}}
    try:
        with torch.inference_mode():
            program = torch.export.export(model, (example,), dynamic_shapes=shapes)
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    except Exception as exc:  # inductor raises many types; name the cause
        raise RtsegError(f"AOTInductor compile failed: {type_name(exc)}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return io_specs(batch, size, channels, half, dynamic)
