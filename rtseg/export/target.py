"""What every exporter is given: one frozen record, built once by `rtseg.export`.

Each exporter is `export_X(model, target) -> (inputs, outputs)`: it writes `target.path`
from `model` ((N, 3, H, W) float -> (N, C, H, W) logits) and returns the engine's tensor
specs (rtseg.manifest.io_specs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rtseg.data import IMAGENET_MEAN, IMAGENET_STD
from rtseg.manifest import TensorSpec, io_specs


@dataclass(frozen=True)
class ExportTarget:
    """The engine to write: `path`; input (batch, 3, *size), output (batch, channels, *size);
    `precision` fp32 / fp16 / bf16 / int8 (fp16: an FP16 graph, from a half model);
    `dynamic`: batch, height and width symbolic; `symbolic_batch`: only the batch symbolic;
    `device` to export on. Format-specific: `workspace_gb` and `cache_dir` (TensorRT's
    builder memory and timing cache), `calib`, `mean`, `std` (OpenVINO INT8 calibration),
    `calib_labels` (class-index PNGs of the calib images: INT8 with accuracy control),
    `calib_skip` (the first calib images, which the parity gate scores: kept out of the
    accuracy control) and `ignore_index` (the labels' void value)."""

    path: Path
    batch: int
    size: tuple[int, int]
    channels: int
    precision: str = "fp32"
    dynamic: bool = False
    device: torch.device | str = "cpu"
    symbolic_batch: bool = False
    workspace_gb: float = 4.0
    cache_dir: Path | None = None
    calib: str | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    calib_labels: str | None = None
    calib_skip: int = 0
    ignore_index: int = 255

    @property
    def half(self) -> bool:
        return self.precision == "fp16"

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.half else torch.float32

    def prepare(self, model: nn.Module) -> tuple[nn.Module, torch.Tensor]:
        """`model` in eval mode on the target's device and dtype, and a zero example input
        (batch, 3, H, W) to trace it with."""
        model = model.to(device=self.device, dtype=self.dtype).eval()
        return model, torch.zeros(self.batch, 3, *self.size, device=self.device,
                                  dtype=self.dtype)

    def specs(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """(inputs, outputs) tensor specs of the engine written (-1: a dynamic axis)."""
        return io_specs(self.batch, self.size, self.channels, self.half, self.dynamic)
