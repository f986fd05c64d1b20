"""Device choice shared by training and inference."""

from __future__ import annotations


def pick_device(name: str = "auto"):
    """`auto` -> cuda when available, else cpu; `cpu`, `cuda`, `cuda:1` are taken as given."""
    import torch

    from rtseg.errors import RtsegError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise RtsegError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RtsegError(f"device {name!r} asked for, but no CUDA GPU is visible: use --device cpu")
    return device
