"""ONNX Runtime backend: TensorRT or CUDA execution providers when present, else the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from rtseg.backends.base import Backend, batch_of, check_input_shape, spec_from_manifest
from rtseg.errors import RtsegError
from rtseg.manifest import Manifest


class OnnxRuntimeBackend(Backend):
    """Runs an .onnx engine; batch (N,3,H,W) float tensors in, logits tensors out."""

    def __init__(self, manifest: Manifest, engine: Path, device: torch.device):
        import onnxruntime as ort

        self.manifest, self.device = manifest, device
        self.spec = spec_from_manifest(manifest)
        self.dtype = torch.float32  # FP16 engines get a converted copy on the host
        self.static_batch = batch_of(manifest.inputs[0].shape)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads() or (os.cpu_count() or 1)
        try:
            self.session = ort.InferenceSession(str(engine), options,
                                                providers=_providers(device))
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise RtsegError(f"ONNX Runtime could not load {engine}: {exc}") from None
        self.input = self.session.get_inputs()[0].name
        self.half = manifest.precision == "fp16"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """batch (N, 3, H, W) float -> logits (N, C, H, W) float32 on `device`."""
        check_input_shape(self.manifest.inputs[0].shape, batch.shape)
        x = batch.detach().to("cpu", torch.float16 if self.half else torch.float32).numpy()
        (logits,) = self.session.run(None, {self.input: np.ascontiguousarray(x)})
        return torch.from_numpy(logits).float().to(self.device)

    def close(self) -> None:
        self.session = None


def _providers(device: torch.device) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CPUExecutionProvider"]
    if device.type == "cuda":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", *wanted]
    return [p for p in wanted if p in available]
