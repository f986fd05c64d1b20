"""TensorRT backend: `set_tensor_address` + `execute_async_v3` on its own CUDA stream, reading
and writing torch tensors in place (no copies through the host).

Written against the documented TensorRT 10/11 Python API; tests are marked `tensorrt`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtseg.backends.base import Backend, batch_of, check_input_shape, spec_from_manifest
from rtseg.errors import RtsegError
from rtseg.manifest import Manifest


class TensorRTBackend(Backend):
    """Runs a serialized engine; batch (N,3,H,W) CUDA tensors in, logits out."""

    def __init__(self, manifest: Manifest, engine: Path, device: torch.device):
        import tensorrt as trt

        if device.type != "cuda":
            raise RtsegError("TensorRT engines run on CUDA devices only: use --device cuda")
        self.manifest, self.device = manifest, device
        self.spec = spec_from_manifest(manifest)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine.read_bytes())
        if self.engine is None:
            raise RtsegError(f"TensorRT could not deserialize {engine}: corrupt, or built by "
                             "another TensorRT version; compile it again")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        self.input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        self.dtype = torch.float16 if manifest.precision == "fp16" else torch.float32
        self.static_batch = batch_of(manifest.inputs[0].shape)
        self.stream = torch.cuda.Stream(device)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """batch (N, 3, H, W) float on CUDA -> logits (N, C, H, W) float32 on CUDA."""
        check_input_shape(self.manifest.inputs[0].shape, batch.shape)
        x = batch.to(self.device, self.dtype).contiguous()
        self.context.set_input_shape(self.input, tuple(x.shape))
        shape = tuple(self.context.get_tensor_shape(self.output))
        out = torch.empty(shape, dtype=self.dtype, device=self.device)
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RtsegError("TensorRT execution failed")
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        x.record_stream(self.stream)
        out.record_stream(self.stream)
        return out.float()

    def close(self) -> None:
        self.context = self.engine = self.runtime = None
