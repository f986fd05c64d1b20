"""Eager PyTorch backend: the reference every engine is checked against."""

from __future__ import annotations

import torch

from rtseg.backends.base import Backend, ModelSpec
from rtseg.checkpoint import Checkpoint


class TorchBackend(Backend):
    """Runs a checkpoint's model in eval mode under `torch.inference_mode`; any batch, any
    input size divisible by 32 (`input_size` sets the one the pipeline resizes frames to,
    default the checkpoint's)."""

    graph_capturable = True

    def __init__(self, checkpoint: Checkpoint, device: torch.device,
                 input_size: tuple[int, int] | None = None):
        meta = checkpoint.meta
        self.device = device
        self.dtype = torch.float32
        self.model = checkpoint.build(device)
        self.spec = ModelSpec(**meta.label_fields(), name=checkpoint.short_id,
                              input_size=tuple(input_size or meta.input_size))

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """batch (N, 3, H, W) float32 on `device` -> logits (N, C, H, W) float32."""
        return self.model(batch)

    def close(self) -> None:
        self.model = None
