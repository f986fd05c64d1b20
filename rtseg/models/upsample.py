"""Bilinear upsampling of decoder logits written as one small convolution at the coarse
resolution and a pixel shuffle: the same numbers as `F.interpolate`, less memory traffic.

A decoder that sums stride-4 logits `a` (N, C, h, w) and a stride-2 correction `b`
(N, C, 2h, 2w), each upsampled bilinearly (align_corners=False) to full resolution
(N, C, 4h, 4w), writes two full-resolution tensors and adds them: on a CPU engine these
interpolations and the sum are a third of the network's time at 512x1024 (OpenVINO's
per-layer counters). Bilinear upsampling is linear, and every full-resolution pixel of a
4x4 block is a fixed mix of the same few coarse values: output row 4k+i of a x4
upsampling reads rows k-1, k (i = 0, 1) or k, k+1 (i = 2, 3) of `a` with weights
(3/8, 5/8), (1/8, 7/8), (7/8, 1/8), (5/8, 3/8); a x2 upsampling of `b` reads rows
2k-1 ... 2k+2 of `b` (weights 1/4, 3/4). PyTorch clamps source positions at the borders,
which is what replicate padding gives. So, with `b` folded into 2x2 blocks
(`pixel_unshuffle`), one grouped 3x3 convolution per class (5 inputs: `a` and the four
phases of `b`; 16 outputs: the phases of a 4x4 block) gives all 16 x C full-resolution
values at stride 4, and `pixel_shuffle` puts them in place: exact up to float rounding.

An argmax over classes commutes with the shuffle, so an engine can take it on the
(N, C, 16, h, w) phases and shuffle the class map only (rtseg.backends' `with_argmax`).

Which form is faster depends on the runtime: OpenVINO's BF16 engine of camvid.pt at
512x1024 runs 1.15-1.22x faster with it (the node's graph, argmax fused), ONNX Runtime's
FP32 engine 5-8 % slower (its grouped convolution costs more than its Resize), so the ONNX
Runtime export keeps the interpolations (`use_phase_upsampling(model, False)`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# rows (or columns) k-1, k, k+1 of the coarse map -> each of the 4 output phases, x4
_TAPS_X4 = ((0.375, 0.625, 0.0), (0.125, 0.875, 0.0), (0.0, 0.875, 0.125), (0.0, 0.625, 0.375))
# blocks k-1, k, k+1 of the stride-2 map folded in pairs (even, odd) -> the 4 phases, x2
_TAPS_X2 = (((0.0, 0.25), (0.75, 0.0), (0.0, 0.0)),
            ((0.0, 0.0), (0.75, 0.25), (0.0, 0.0)),
            ((0.0, 0.0), (0.25, 0.75), (0.0, 0.0)),
            ((0.0, 0.0), (0.0, 0.75), (0.25, 0.0)))


@lru_cache(maxsize=8)
def phase_weight(classes: int) -> np.ndarray:
    """(C * 16, 5, 3, 3) float32 weights of the grouped convolution (groups = C): per class,
    input 0 is `a`, inputs 1-4 the 2x2 phases (p, q) of `b`; output i * 4 + j is the pixel
    at row i, column j of each 4x4 block. NumPy, so that a cached copy is never a tensor
    made while tracing an export."""
    x4 = np.array(_TAPS_X4)  # (4 phases, 3 rows)
    x2 = np.array(_TAPS_X2)  # (4 phases, 3 blocks, 2 rows)
    from_a = np.einsum("iy,jx->ijyx", x4, x4).reshape(16, 1, 3, 3)
    from_b = np.einsum("iyp,jxq->ijpqyx", x2, x2).reshape(16, 4, 3, 3)
    return np.tile(np.concatenate([from_a, from_b], axis=1), (classes, 1, 1, 1)).astype(np.float32)


def can_upsample_sum(a: torch.Tensor, b: torch.Tensor, size) -> bool:
    """True when `size` is exactly 4x `a`'s and 2x `b`'s (the network's input is a multiple
    of 32 in the node; other shapes keep `F.interpolate`)."""
    h, w = a.shape[-2:]
    return (tuple(size) == (4 * h, 4 * w) and tuple(b.shape[-2:]) == (2 * h, 2 * w)
            and a.shape[:2] == b.shape[:2])


def upsample_sum_phases(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (N, C, h, w), b (N, C, 2h, 2w) -> (N, C * 16, h, w): channel c * 16 + i * 4 + j is
    pixel (4y + i, 4x + j) of up(a, x4) + up(b, x2) for class c (pixel_shuffle order)."""
    n, c, h, w = a.shape
    a = F.pad(a, (1, 1, 1, 1), mode="replicate")
    b = F.pixel_unshuffle(F.pad(b, (2, 2, 2, 2), mode="replicate"), 2)  # (N, 4C, h+2, w+2)
    x = torch.cat([a.reshape(n, c, 1, h + 2, w + 2), b.reshape(n, c, 4, h + 2, w + 2)], 2)
    weight = torch.tensor(phase_weight(c), dtype=a.dtype, device=a.device)  # a copy
    return F.conv2d(x.reshape(n, c * 5, h + 2, w + 2), weight, groups=c)


def upsample_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (N, C, h, w), b (N, C, 2h, 2w) -> (N, C, 4h, 4w) = bilinear x4 of a + bilinear
    x2 of b (align_corners=False), computed at stride 4 and pixel-shuffled."""
    return F.pixel_shuffle(upsample_sum_phases(a, b), 4)


def use_phase_upsampling(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """Set, on every submodule that has the choice (`phase_upsample`), whether it computes
    its sum of upsamplings as above or with `F.interpolate`: the same function either way,
    only the exported graph differs. Returns `model`."""
    for module in model.modules():
        if hasattr(module, "phase_upsample"):
            module.phase_upsample = bool(enabled)
    return model
