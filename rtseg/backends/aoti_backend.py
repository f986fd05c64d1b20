"""AOTInductor backend: a compiled .pt2 package, loaded with `aoti_load_package`."""

from __future__ import annotations

from pathlib import Path

import torch

from rtseg.backends.base import Backend, batch_of, check_input_shape, spec_from_manifest
from rtseg.errors import RtsegError
from rtseg.manifest import Manifest


class AotiBackend(Backend):
    """batch (N,3,H,W) float on `device` -> logits (N,C,H,W) float32 on `device`."""

    graph_capturable = True

    def __init__(self, manifest: Manifest, engine: Path, device: torch.device):
        self.manifest, self.device = manifest, device
        self.spec = spec_from_manifest(manifest)
        try:
            self.runner = torch._inductor.aoti_load_package(str(engine))
        except Exception as exc:  # corrupt or foreign packages raise various types
            raise RtsegError(f"AOTInductor could not load {engine}: {exc}") from None
        self.dtype = torch.float16 if manifest.precision == "fp16" else torch.float32
        self.static_batch = batch_of(manifest.inputs[0].shape)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        check_input_shape(self.manifest.inputs[0].shape, batch.shape)
        out = self.runner(batch.to(self.device, self.dtype).contiguous())
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.float()

    def close(self) -> None:
        self.runner = None
