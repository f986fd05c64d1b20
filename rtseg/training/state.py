"""The resumable state of a run (`last.pt`): weights, optimizer, schedule, counters, RNG.

Saved at the end of every evaluation round (so an interrupted run resumes from the last
one); read back with `torch.load(weights_only=True)` like every rtseg file. The counters
are `Progress.counters()` by name; keys this version does not know are ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtseg.errors import RtsegError
from rtseg.files import atomic_write

FORMAT = "rtseg-train-state"


def save_state(path: Path, model, optimizer, schedule, scaler, counters: dict,
               ema=None) -> None:
    """Write the state atomically. counters: `Progress.counters()` (plain values only);
    ema: the AveragedModel of the weights, if the run keeps one."""
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "ema": ema.state_dict() if ema is not None else {},
        "torch_rng": torch.get_rng_state(),
        "counters": dict(counters),
    }
    with atomic_write(path) as fh:
        torch.save(payload, fh)


def load_state(path: Path, model, optimizer, schedule, scaler, ema=None) -> dict:
    """Restore everything saved by save_state into the given objects; returns the counters."""
    if not path.is_file():
        raise RtsegError(f"nothing to resume: {path} does not exist (a run writes it at its "
                         "first evaluation)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RtsegError(f"{path} could not be read to resume ({exc}); start afresh without "
                         "--resume") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RtsegError(f"{path} is not an rtseg training state")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    schedule.load_state_dict(payload["schedule"])
    if scaler is not None and payload["scaler"]:
        scaler.load_state_dict(payload["scaler"])
    if ema is not None:
        if not payload.get("ema"):
            raise RtsegError(f"{path} was saved by a run without [train] ema: resume it with "
                             "the recipe it was started with, or start afresh")
        ema.load_state_dict(payload["ema"])
    torch.set_rng_state(payload["torch_rng"])
    return dict(payload["counters"])
