"""Changes to a trained checkpoint that need no training: logit adjustment, input size,
dropping one of LR-ASPP's decoder corrections, and upsampling its logits once.

Logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021): a loss
weighted by w_c learns logits shifted by about log w_c, which buys the rare classes recall
at the frequent classes' cost. Subtracting tau * log w_c after training takes a share tau
of that shift back out (tau = 0: unchanged, 1: the unweighted classifier); mIoU usually
peaks in between. The shift is folded into the bias of the model's last layer, so every
engine compiled from the checkpoint carries it at no cost: no new layer, no new op.

Which bias: the one whose change moves every output logit by exactly that change (a
convolution's bias followed only by additions and bilinear resizing). It is found by
trying, not by name, so it works for every model rtseg builds.

Dropping a correction: rtseg's fine LR-ASPP adds each of its decoder blocks (`refine` at
stride 4, `refine2` at stride 2, `refine1` at full resolution, `context` at stride 16) to
the logits, so the network without one still works with every other weight unchanged, and
costs less (benchmarks/decoder_ablation.py measures what each buys and costs).

Upsampling once (`upsample_once`): a fine LR-ASPP with a stride-2 decoder sums the stride-4
logits (upsampled to stride 2) and the stride-2 correction at stride 2 and upsamples that
once to full resolution, instead of upsampling each to full resolution: the same weights,
one full-resolution interpolation fewer, a slightly different function (bilinear x2 twice
is not x4), so it is scored again like every other change here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from rtseg.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rtseg.errors import RtsegError
from rtseg.models import build_model

PROBE_SIZE = (64, 96)  # a multiple of 32 every model accepts
DROPPABLE = ("refine", "refine2", "refine1", "context")  # additive corrections (see above)


def class_weight_offsets(ckpt: Checkpoint, tau: float) -> list[float]:
    """-tau * log(w_c) per class, w the class_weights of the checkpoint's recipe."""
    weights = ckpt.meta.recipe.get("train", {}).get("class_weights") or []
    where = ckpt.path or "checkpoint"
    if not weights:
        raise RtsegError(f"{where}: its recipe has no class_weights, so there is no weighting "
                         "to adjust for; logit adjustment needs a model trained with them")
    if len(weights) != len(ckpt.meta.classes) or min(weights) <= 0:
        raise RtsegError(f"{where}: the recipe's class_weights {weights} are not one positive "
                         f"weight per class ({len(ckpt.meta.classes)} classes)")
    return [-tau * math.log(w) for w in weights]


def find_output_bias(model: nn.Module, channels: int) -> str:
    """Name of the parameter (shape (channels,)) whose change shifts all of the model's
    output logits (N, channels, H, W) by exactly that change; RtsegError if none does."""
    model = model.eval()
    x = torch.randn(1, 3, *PROBE_SIZE, generator=torch.Generator().manual_seed(0))
    delta = torch.linspace(0.5, 1.5, channels)
    params = dict(model.named_parameters())
    candidates = [n for n, p in params.items()
                  if n.endswith("bias") and tuple(p.shape) == (channels,)]
    with torch.no_grad():
        base = model(x)
        for name in reversed(candidates):  # the last layers come last
            p = params[name]
            p.add_(delta)
            moved = model(x) - base
            p.sub_(delta)
            if torch.allclose(moved, delta[None, :, None, None].expand_as(moved), atol=1e-4):
                return name
    raise RtsegError(f"{type(model).__name__}: no layer's bias shifts its output logits "
                     "uniformly, so logit adjustment cannot be folded into its weights")


def drop_corrections(ckpt: Checkpoint, names: Sequence[str]) -> tuple[nn.Module, dict]:
    """(model without the corrections `names`, eval mode, float32; its model kwargs)."""
    where = ckpt.path or "checkpoint"
    kwargs = dict(ckpt.meta.model_kwargs)
    for name in names:
        if name not in DROPPABLE:
            raise RtsegError(f"--drop {name}: not a correction that can be dropped; those are "
                             f"{', '.join(DROPPABLE)} (of a fine LR-ASPP)")
        if not kwargs.get(name):
            raise RtsegError(f"--drop {name}: {where} ({ckpt.meta.model}, kwargs {kwargs}) "
                             f"has no {name} to drop")
        kwargs[name] = 0
    model = build_model(ckpt.meta.model, ckpt.meta.out_channels, **kwargs)
    keep = model.state_dict()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in ckpt.state_dict.items() if k in keep})
    return model.eval(), kwargs


def upsampling_once(model: nn.Module, ckpt: Checkpoint, kwargs: dict) -> tuple[nn.Module, dict]:
    """(`model` rebuilt with `upsample_once`, its weights unchanged; the new kwargs)."""
    if ckpt.meta.model != "lraspp_mobilenet_v3" or not kwargs.get("refine2"):
        raise RtsegError(f"--upsample-once: {ckpt.path or 'checkpoint'} ({ckpt.meta.model}, "
                         f"kwargs {kwargs}) has no stride-2 decoder; upsampling once is for "
                         "a fine LR-ASPP with refine2")
    kwargs = {**kwargs, "upsample_once": True}
    once = build_model(ckpt.meta.model, ckpt.meta.out_channels, **kwargs)
    once.load_state_dict(model.state_dict())
    return once.eval(), kwargs


def adjust_checkpoint(src: str | Path, out: str | Path, tau: float = 0.0,
                      input_size: tuple[int, int] | None = None,
                      drop: Sequence[str] = (), upsample_once: bool = False,
                      drivable: Sequence[str] = ()) -> dict:
    """Write `src` to `out` with the corrections `drop` removed, tau's logit adjustment
    folded into the output bias, a new network input size (H, W), its logits upsampled
    once and/or other `drivable` classes, all recorded in the recipe under "adjust".
    Returns that record."""
    ckpt = load_checkpoint(src)
    meta = ckpt.meta.with_drivable(drivable) if drivable else ckpt.meta
    if meta.binary and tau:
        raise RtsegError(f"{src}: a binary model has one logit; logit adjustment is for "
                         "multi-class models")
    if input_size is not None and (min(input_size) < 32 or any(v % 32 for v in input_size)):
        raise RtsegError(f"input size {input_size[0]}x{input_size[1]}: height and width must "
                         "be positive multiples of 32")
    if not tau and input_size is None and not drop and not upsample_once and not drivable:
        raise RtsegError("nothing to change: give --tau, --input-size, --drop, "
                         "--upsample-once and/or --drivable")
    model, kwargs = drop_corrections(ckpt, drop) if drop else (ckpt.build("cpu"),
                                                               meta.model_kwargs)
    if upsample_once:
        model, kwargs = upsampling_once(model, ckpt, dict(kwargs))
    record = {"from": str(src), "from_sha256": ckpt.sha256,
              "input_size_before": list(meta.input_size),
              "metrics": "the training run's, before this change: rtseg eval scores it now"}
    if tau:
        offsets = class_weight_offsets(ckpt, tau)
        name = find_output_bias(model, meta.out_channels)
        with torch.no_grad():
            dict(model.named_parameters())[name].add_(torch.tensor(offsets))
        record.update(tau=tau, offsets=offsets, bias=name)
    if drop:
        record.update(dropped=list(drop), model_kwargs_before=dict(meta.model_kwargs))
    if upsample_once:
        record["upsample_once"] = True
    if input_size is not None:
        record["input_size"] = list(input_size)
    if drivable:
        record.update(drivable=list(meta.drivable), drivable_before=list(ckpt.meta.drivable))
    recipe = dict(meta.recipe)
    recipe["adjust"] = record
    new_meta = replace(meta, recipe=recipe, model_kwargs=kwargs,
                       input_size=tuple(input_size) if input_size else meta.input_size)
    half = any(v.dtype == torch.float16 for v in ckpt.state_dict.values())
    save_checkpoint(out, model, new_meta, half=half)
    return record
