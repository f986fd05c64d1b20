"""LR-ASPP MobileNetV3-Large (torchvision's), optionally with a stride-4 skip (`fine`)
and refinement blocks on top of it at stride 4, 2 and 1 (`refine`, `refine2`, `refine1`).

torchvision's LR-ASPP adds a 1x1 classifier on the stride-8 features (40 channels) to the
head's logits and upsamples the sum 8x. Thin things (poles, signs, distant people) are a
few pixels wide at 360x480, below what stride 8 resolves. `fine = true` continues the same
idea one level up: the logits are upsampled to stride 4 and a 1x1 classifier on the last
stride-4 features (24 channels) is added before the final 4x upsampling. Its weights start
at zero, so a model grown from a trained plain LR-ASPP (`[model] init`) starts out
predicting what that model did. Cost: one 24 -> C 1x1 convolution at stride 4.

`refine = K` (with `fine`) adds a small decoder at stride 4: a 3x3 convolution over the
stride-4 logits concatenated with the 24-channel features (C + 24 -> K, BN, ReLU), then a
1x1 convolution K -> C whose output is added to the logits. A 1x1 skip can only add a
per-pixel vote from 24 features; the 3x3 block sees a neighbourhood and the coarse answer
together, which is what sharpening a pole or a sign's outline needs. Its last convolution
starts at zero, so a `fine` model grown into it predicts what it did. Cost at 352x480:
~0.1 GMAC for K = 32 (the network is ~0.8).

`refine2 = K` (with `fine`) is the same block one level up, at stride 2: the stride-4
logits upsampled 2x, concatenated with the 16-channel stride-2 features of the stem's
first block, 3x3 -> K, BN, ReLU, zero-initialised 1x1 -> C, added. Outlines of objects a
few pixels wide are placed at half resolution rather than a quarter. The correction is
upsampled and added to the upsampled stride-4 logits, so at its zero start the model
computes exactly what it did without it. Cost at 352x480: ~0.17 GMAC for K = 16.

`refine1 = K` (with `fine`) is the block at full resolution, where the only features are
the (normalised) image itself: the final logits concatenated with the 3 colour channels,
3x3 -> K, BN, ReLU, zero-initialised 1x1 -> C, added. Every earlier level sees the frame
through at least one stride; a pole one or two pixels wide is only an edge in the image.
Cost at 352x480: ~0.19 GMAC for K = 8, and one more pass over full-resolution logits.

`context = K` adds context where LR-ASPP has none: its head sees the stride-16 features
(960 channels) only through 1x1 convolutions gated by a global pool. The block reduces them
1x1 -> K (BN, ReLU), then two 3x3 convolutions dilated 2 and 4 (BN, ReLU; a receptive field
of 13 cells, 208 pixels), and a zero-initialised 1x1 -> C whose output is upsampled to
stride 8 and added to the head's logits. Works with or without `fine`. Cost at 352x480:
~0.09 GMAC for K = 64 (a 22x30 grid).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.models.upsample import can_upsample_sum, upsample_sum


class ContextLRASPP(nn.Module):
    """torchvision's LRASPP (same parameter names) plus the `context` block on the
    stride-16 features; returns {"out": logits (N, C, H, W)}."""

    def __init__(self, lraspp: nn.Module, high_channels: int, num_classes: int, width: int):
        super().__init__()
        self.backbone = lraspp.backbone
        self.classifier = lraspp.classifier
        self.context = _context_block(high_channels, width, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (N, 3, H, W) -> {"out": (N, C, H, W)}; H, W multiples of 32."""
        features = self.backbone(x)
        out = _head_with_context(self.classifier, self.context, features)  # (N, C, H/8, W/8)
        return OrderedDict(out=F.interpolate(out, size=x.shape[-2:], mode="bilinear",
                                             align_corners=False))


class FineLRASPP(nn.Module):
    """torchvision's LRASPP (backbone + classifier, same parameter names) plus
    `fine_classifier`; returns {"out": logits (N, C, H, W)} like torchvision's models."""

    def __init__(self, lraspp: nn.Module, fine_layer: str, fine_channels: int,
                 num_classes: int, refine: int = 0, refine2: int = 0,
                 half_layer: str = "1", half_channels: int = 16, refine1: int = 0,
                 context: int = 0, high_channels: int = 960, upsample_once: bool = False):
        super().__init__()
        from torchvision.models._utils import IntermediateLayerGetter

        layers = dict(lraspp.backbone.return_layers)
        layers[fine_layer] = "fine"
        if refine2:
            layers[half_layer] = "half"
        # the same blocks under the same names, so plain LR-ASPP weights load into it
        self.backbone = IntermediateLayerGetter(lraspp.backbone, return_layers=layers)
        self.classifier = lraspp.classifier
        self.fine_classifier = _zero_conv1x1(fine_channels, num_classes)
        self.refine = _refine_block(num_classes + fine_channels, refine, num_classes)
        self.refine2 = _refine_block(num_classes + half_channels, refine2, num_classes)
        self.refine1 = _refine_block(num_classes + 3, refine1, num_classes)
        if context:  # absent otherwise, so checkpoints without it keep their names
            self.context = _context_block(high_channels, context, num_classes)
        self.upsample_once = bool(upsample_once)
        self.phase_upsample = True  # not a weight: how the graph computes the same sum

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (N, 3, H, W) -> {"out": (N, C, H, W)}; H, W multiples of 32."""
        features = self.backbone(x)
        fine = features["fine"]  # (N, 24, H/4, W/4)
        out = _head_with_context(self.classifier, getattr(self, "context", None), features)
        out = F.interpolate(out, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        out = out + self.fine_classifier(fine)
        if self.refine is not None:
            out = out + self.refine(torch.cat([out, fine], dim=1))
        full = self._to_full(out, features, x.shape[-2:])
        if self.refine1 is not None:  # a full-resolution correction, over the image
            full = full + self.refine1(torch.cat([full, x], dim=1))
        return OrderedDict(out=full)

    def _to_full(self, out: torch.Tensor, features: dict[str, torch.Tensor],
                 size) -> torch.Tensor:
        """Stride-4 logits (N, C, H/4, W/4) -> (N, C, H, W), with the stride-2 correction
        when there is one. By default the stride-4 logits and the correction are each
        upsampled to full resolution and summed (as one grouped convolution at stride 4 and
        a pixel shuffle, exactly: rtseg.models.upsample); with `upsample_once` they are summed at
        stride 2 and the sum upsampled once: one full-resolution interpolation instead of
        two, 1.3x faster as an OpenVINO BF16 engine at 512x1024 (not the same function:
        bilinear x2 twice is not x4, so a checkpoint switched to it is scored again)."""
        def up(t: torch.Tensor, hw) -> torch.Tensor:
            return F.interpolate(t, size=hw, mode="bilinear", align_corners=False)

        if self.refine2 is None:
            return up(out, size)
        half = features["half"]  # (N, 16, H/2, W/2)
        at_half = up(out, half.shape[-2:])
        fix = self.refine2(torch.cat([at_half, half], dim=1))
        if self.upsample_once:
            return up(at_half + fix, size)
        if self.phase_upsample and can_upsample_sum(out, fix, size):  # computed at stride 4
            return upsample_sum(out, fix)
        return up(out, size) + up(fix, size)


def _head_with_context(classifier: nn.Module, context: nn.Module | None,
                       features: dict[str, torch.Tensor]) -> torch.Tensor:
    """LR-ASPP head logits (N, C, H/8, W/8), plus the context block's correction computed
    on features["high"] (N, 960, H/16, W/16) and upsampled to stride 8."""
    out = classifier(features)
    if context is None:
        return out
    fix = context(features["high"])
    return out + F.interpolate(fix, size=out.shape[-2:], mode="bilinear", align_corners=False)


def _context_block(in_channels: int, width: int, num_classes: int) -> nn.Module:
    """(N, 960, h, w) -> (N, C, h, w): 1x1 reduce, 3x3 dilated 2 and 4, zero 1x1 out."""
    def cbr(cin: int, kernel: int, dilation: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, width, kernel, padding=dilation * (kernel // 2),
                          dilation=dilation, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True)]

    return nn.Sequential(*cbr(in_channels, 1, 1), *cbr(width, 3, 2), *cbr(width, 3, 4),
                         _zero_conv1x1(width, num_classes))


def _zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1x1 convolution whose weights and bias start at zero: a grown branch adds nothing
    until it is trained."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _refine_block(in_channels: int, width: int, num_classes: int) -> nn.Module | None:
    """(N, C + F, h, w) -> (N, C, h, w) correction, zero at start; None if width 0."""
    if width <= 0:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                         _zero_conv1x1(width, num_classes))


def build_lraspp(num_classes: int, fine: bool = False, refine: int = 0,
                 refine2: int = 0, refine1: int = 0,
                 context: int = 0, upsample_once: bool = False) -> tuple[nn.Module, nn.Module]:
    """torchvision's LRASPP MobileNetV3-Large, random weights, with the stride-4 skip
    when `fine`, the stride-4 refinement block of width `refine`, the stride-2 one of
    width `refine2` and the full-resolution one of width `refine1` on top of it, and the
    stride-16 context block of width `context` -> (model returning {"out": logits},
    backbone)."""
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    for name, width in (("refine", refine), ("refine2", refine2), ("refine1", refine1)):
        if width and not fine:
            raise ValueError(f"{name} works on the stride-4 skip's logits: set fine = true too")
    if upsample_once and not refine2:
        raise ValueError("upsample_once sums the stride-2 decoder's correction before the "
                         "one full-resolution upsampling: set refine2 too")
    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                    num_classes=num_classes)
    high = net.classifier.cbr[0].in_channels  # 960: the stride-16 features
    if not fine:
        if context:
            grown = ContextLRASPP(net, high, num_classes, int(context))
            return grown, grown.backbone
        return net, net.backbone
    low = int(next(k for k, v in net.backbone.return_layers.items() if v == "low"))
    # the block before the first stride-8 block ends stride 4
    last_stride4 = net.backbone[str(low - 1)]
    # block 1 (after the stem) is the last at stride 2
    grown = FineLRASPP(net, str(low - 1), last_stride4.out_channels, num_classes,
                       int(refine), int(refine2), "1", net.backbone["1"].out_channels,
                       int(refine1), int(context), high, bool(upsample_once))
    return grown, grown.backbone
