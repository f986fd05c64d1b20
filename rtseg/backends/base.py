"""The backend interface: normalised batch in, logits out, on the pipeline's device."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline needs to know about a model, whatever runs it.

    input_size is (H, W) of the network input; mean/std normalise RGB in [0, 1].
    """

    name: str
    classes: tuple[str, ...]
    drivable_ids: tuple[int, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    palette: tuple[tuple[int, int, int], ...] = ()


class Backend(ABC):
    """One runtime. `__call__((N, 3, H, W) float) -> (N, C, H, W) float logits`."""

    spec: ModelSpec
    device: object  # torch.device

    @abstractmethod
    def __call__(self, batch):
        """batch (N, 3, H, W) float32 normalised, on `device` -> logits (N, C, H, W)."""

    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
