"""The backend interface: normalised batch in, logits out, on the pipeline's device."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from rtseg.labels import LabelFacts


@dataclass(frozen=True, kw_only=True)
class ModelSpec(LabelFacts):
    """What the pipeline needs to know about a model, whatever runs it: its label facts
    (classes, drivable, mean/std, palette: rtseg.labels.LabelFacts), a `name` for the wire
    protocol's `model` field and the (H, W) `input_size` of the network input."""

    name: str
    input_size: tuple[int, int]


class Backend(ABC):
    """One runtime. `__call__((N, 3, H, W) float) -> (N, C, H, W) float logits`.

    What every backend declares, so that callers never ask which class they hold:
    - `spec`: the model's classes, input size (H, W) and normalisation;
    - `device`: the torch.device its inputs and logits live on;
    - `dtype`: the torch dtype it wants its input in (float16 for FP16 engines);
    - `static_batch`: the one batch size it takes, or None when any batch goes;
    - `graph_capturable` (class-level): its call may be captured in a CUDA graph (pure
      torch work on the current stream, no host synchronisation, no allocation that a
      graph could not replay);
    - `runtime_info`: what the runtime chose at load time (empty where nothing to say);
    - `fused_argmax` (class-level): `classes(batch)` runs the argmax inside the engine, so
      a caller that wants class maps should ask for them rather than for logits (the
      engine then never writes C channels of logits, and the host never reads them);
    - `fused_preprocess` (class-level): `frames_to_classes(frames)` takes the frames
      themselves, (N, H, W, 3) uint8 BGR at the input size, and runs the colour swap, the
      normalisation and the argmax inside the engine (the host only resizes).
    """

    spec: ModelSpec
    device: object  # torch.device
    dtype: object  # torch.dtype of the input batch
    static_batch: int | None = None
    graph_capturable: ClassVar[bool] = False
    fused_argmax: ClassVar[bool] = False
    fused_preprocess: ClassVar[bool] = False

    @property
    def runtime_info(self) -> dict:
        """What the runtime decided (threads, precision actually used...), for manifests."""
        return {}

    @abstractmethod
    def __call__(self, batch):
        """batch (N, 3, H, W) float32 normalised, on `device` -> logits (N, C, H, W)."""

    def classes(self, batch):
        """batch (N, 3, H, W) as for `__call__` -> (N, H, W) uint8 class index per pixel at
        the network's resolution (first class on ties; C == 1: 1 where the logit is > 0).
        This default applies `rtseg.models.logits_to_classes` to the logits;
        `fused_argmax` backends compute it in the engine."""
        import torch

        from rtseg.models import logits_to_classes

        return logits_to_classes(self(batch)).to(torch.uint8)

    def frames_to_classes(self, frames):
        """frames (N, H, W, 3) uint8 BGR at the input size -> (N, H, W) uint8 class maps;
        only `fused_preprocess` backends have it."""
        raise NotImplementedError(f"{type(self).__name__} takes normalised batches only")

    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def spec_from_manifest(manifest) -> ModelSpec:
    """The pipeline's view of a compiled engine's manifest."""
    return ModelSpec(**manifest.label_fields(), name=manifest.short_id,
                     input_size=manifest.input_size)


def batch_of(shape) -> int | None:
    """An engine's static batch from its input shape (N, 3, H, W); None when N is -1."""
    return None if shape[0] == -1 else int(shape[0])


def check_input_shape(expected: tuple[int, ...], shape) -> None:
    """An input the engine cannot take is an error naming both shapes (-1 = any)."""
    if len(shape) != len(expected) or any(e not in (-1, s) for e, s in zip(expected, shape)):
        from rtseg.errors import RtsegError

        raise RtsegError(f"input shape {tuple(shape)} does not fit the engine's {expected} "
                         "(compile with --dynamic, or another --height/--width/--batch)")
