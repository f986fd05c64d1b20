"""Runtimes behind one small interface; each imports its framework inside itself.

`load_backend(model, device)` takes a checkpoint path or `demo` (engines and manifests come
with the engines issue) and returns the backend plus the metadata the pipeline needs.
"""

from __future__ import annotations

from rtseg.backends.base import Backend, ModelSpec


def load_backend(model: str, device: str = "auto") -> Backend:
    """A ready backend for a checkpoint path (or `demo`), on `device` (auto/cpu/cuda)."""
    from rtseg.backends.torch_backend import TorchBackend
    from rtseg.checkpoint import load_checkpoint
    from rtseg.device import pick_device

    return TorchBackend(load_checkpoint(model), pick_device(device))


__all__ = ["Backend", "ModelSpec", "load_backend"]
