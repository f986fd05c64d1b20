"""torch-tensorrt backend: a saved exported program whose graph calls TensorRT engines.

Written against torch-tensorrt 2.x's documented API.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtseg.backends.base import Backend, batch_of, check_input_shape, spec_from_manifest
from rtseg.errors import RtsegError
from rtseg.manifest import Manifest


class TorchTensorRTBackend(Backend):
    """batch (N,3,H,W) float on CUDA -> logits (N,C,H,W) float32 on CUDA."""

    def __init__(self, manifest: Manifest, engine: Path, device: torch.device):
        try:
            import torch_tensorrt  # noqa: F401  (registers the TensorRT ops)
        except ImportError:
            raise RtsegError("this engine needs torch-tensorrt: pip install 'rtseg[tensorrt]'"
                             ) from None
        self.manifest, self.device = manifest, device
        self.spec = spec_from_manifest(manifest)
        try:
            self.module = torch.export.load(str(engine)).module()
        except Exception as exc:  # corrupt or foreign programs raise various types
            raise RtsegError(f"could not load the torch-tensorrt program {engine}: {exc}"
                             ) from None
        self.dtype = torch.float16 if manifest.precision == "fp16" else torch.float32
        self.static_batch = batch_of(manifest.inputs[0].shape)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        check_input_shape(self.manifest.inputs[0].shape, batch.shape)
        out = self.module(batch.to(self.device, self.dtype).contiguous())
        return (out[0] if isinstance(out, (list, tuple)) else out).float()

    def close(self) -> None:
        self.module = None
