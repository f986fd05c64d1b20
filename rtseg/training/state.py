"""The resumable state of a run (`last.pt`): weights, optimizer, schedule, counters, RNG.

Saved at every evaluation round and when the run is interrupted; read back with
`torch.load(weights_only=True)` like every rtseg file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtseg.errors import RtsegError

FORMAT = "rtseg-train-state"


def save_state(path: Path, model, optimizer, schedule, scaler, counters: dict) -> None:
    """Write the state atomically. counters: step, best, best_step, bad_rounds, round sums."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "torch_rng": torch.get_rng_state(),
        "counters": dict(counters),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_state(path: Path, model, optimizer, schedule, scaler) -> dict:
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
    torch.set_rng_state(payload["torch_rng"])
    return dict(payload["counters"])
