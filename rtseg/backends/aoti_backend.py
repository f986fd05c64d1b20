"""AOTInductor backend: a compiled .pt2 package, loaded with `aoti_load_package`.

Loaded with `run_single_threaded=True`, which torch documents as "useful to avoid
conflicts with CUDAGraphs": by default the package's runner guards each call with its own
locks and CUDA events. On an H200 (torch 2.11) the node's CUDA graph capture of an
AOTInductor engine failed and every frame ran pre, infer and post eagerly (5.5 ms a frame
at 512x1024 against 1.8 ms for the engine alone); this is the documented remedy, not yet
re-measured on a GPU. Calls are serialised by a lock here instead.
"""

from __future__ import annotations

import threading
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
            self.runner = torch._inductor.aoti_load_package(str(engine),
                                                            run_single_threaded=True)
        except Exception as exc:  # corrupt or foreign packages raise various types
            raise RtsegError(f"AOTInductor could not load {engine}: {exc}") from None
        self.dtype = torch.float16 if manifest.precision == "fp16" else torch.float32
        self.static_batch = batch_of(manifest.inputs[0].shape)
        self._lock = threading.Lock()  # the runner itself no longer locks (module doc)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        check_input_shape(self.manifest.inputs[0].shape, batch.shape)
        with self._lock:
            out = self.runner(batch.to(self.device, self.dtype).contiguous())
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.float()

    def close(self) -> None:
        self.runner = None
