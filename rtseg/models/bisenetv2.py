"""BiSeNetV2: a two-branch real-time network made to train from scratch (Yu et al., IJCV 2021,
"BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic Segmentation").

Written here from the paper's description (no library ships it):

- detail branch: wide, shallow plain 3x3 convolutions, 64-64-128 channels down to 1/8;
- semantic branch: narrow and deep, a stem to 1/4, gather-and-expand (GE) layers to 1/32,
  and a context embedding (global average pool added back);
- bilateral guided aggregation (BGA): each branch gates the other at 1/8 and 1/32;
- a segmentation head at 1/8, upsampled to the input; in training mode four booster heads
  on the semantic stages (1/4, 1/8, 1/16, 1/32), whose losses help a network trained
  without ImageNet weights (the paper's "booster training strategy"; free at inference).

Every layer is BatchNorm + ReLU around plain or depthwise convolutions and bilinear resizes:
ONNX opset 17, OpenVINO and TensorRT take it as is. `head_channels` (paper: 1024) is the main
head's width; 256 keeps it cheap on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
            relu: bool = True) -> nn.Sequential:
    """k x k convolution (no bias) -> BatchNorm [-> ReLU]."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DetailBranch(nn.Sequential):
    """(N, 3, H, W) -> (N, 128, H/8, W/8): three stages of plain 3x3 convolutions, `w1` and
    `w2` channels at 1/2 and 1/4 (paper: 64, 64), 128 at 1/8."""

    def __init__(self, w1: int = 64, w2: int = 64) -> None:
        super().__init__(
            conv_bn(3, w1, stride=2), conv_bn(w1, w1),
            conv_bn(w1, w2, stride=2), conv_bn(w2, w2), conv_bn(w2, w2),
            conv_bn(w2, 128, stride=2), conv_bn(128, 128), conv_bn(128, 128),
        )


class Stem(nn.Module):
    """(N, 3, H, W) -> (N, 16, H/4, W/4): a strided conv, then a strided conv beside a max
    pool, concatenated and fused."""

    def __init__(self, cout: int = 16) -> None:
        super().__init__()
        self.first = conv_bn(3, cout, stride=2)
        self.conv = nn.Sequential(conv_bn(cout, cout // 2, k=1), conv_bn(cout // 2, cout, stride=2))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.fuse = conv_bn(2 * cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        return self.fuse(torch.cat([self.conv(x), self.pool(x)], dim=1))


class GatherExpand(nn.Module):
    """Gather-and-expand layer: 3x3 conv, depthwise expansion x6 (stride 1 or 2), 1x1
    projection, added to a shortcut (identity, or depthwise + 1x1 when it strides), ReLU.
    (N, cin, H, W) -> (N, cout, H/stride, W/stride)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 6) -> None:
        super().__init__()
        mid = cin * expand
        layers = [conv_bn(cin, cin), conv_bn(cin, mid, stride=stride, groups=cin, relu=False)]
        if stride == 2:
            layers.append(conv_bn(mid, mid, groups=mid, relu=False))
        layers.append(conv_bn(mid, cout, k=1, relu=False))
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv_bn(cin, cin, stride=stride, groups=cin, relu=False),
                                          conv_bn(cin, cout, k=1, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ContextEmbedding(nn.Module):
    """(N, C, H, W) -> same: global average pool -> BN -> 1x1, added back, then a 3x3 conv."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.gap_conv = conv_bn(channels, channels, k=1)
        self.out = conv_bn(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.gap_conv(self.norm(x.mean(dim=(2, 3), keepdim=True)))
        return self.out(x + context)


class SemanticBranch(nn.Module):
    """(N, 3, H, W) -> features at 1/4 (16 ch), 1/8 (32), 1/16 (64), 1/32 (128) and the
    context-embedded 1/32 map (128): the last is what BGA uses, the others feed boosters."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = Stem(16)
        self.s3 = nn.Sequential(GatherExpand(16, 32, 2), GatherExpand(32, 32))
        self.s4 = nn.Sequential(GatherExpand(32, 64, 2), GatherExpand(64, 64))
        self.s5 = nn.Sequential(GatherExpand(64, 128, 2), GatherExpand(128, 128),
                                GatherExpand(128, 128), GatherExpand(128, 128))
        self.context = ContextEmbedding(128)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f2 = self.stem(x)
        f3 = self.s3(f2)
        f4 = self.s4(f3)
        f5 = self.s5(f4)
        return [f2, f3, f4, f5, self.context(f5)]


class GuidedAggregation(nn.Module):
    """BGA: detail (N, 128, H/8, W/8) and semantic (N, 128, H/32, W/32) gate each other at
    both scales; the sum at 1/8 is fused by a 3x3 conv -> (N, 128, H/8, W/8)."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        c = channels
        self.detail_keep = nn.Sequential(conv_bn(c, c, groups=c, relu=False),
                                         nn.Conv2d(c, c, 1, bias=False))
        self.detail_down = nn.Sequential(conv_bn(c, c, stride=2, relu=False),
                                         nn.AvgPool2d(3, 2, 1, ceil_mode=False))
        self.semantic_up = conv_bn(c, c, relu=False)
        self.semantic_keep = nn.Sequential(conv_bn(c, c, groups=c, relu=False),
                                           nn.Conv2d(c, c, 1, bias=False))
        self.fuse = conv_bn(c, c)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        size = detail.shape[-2:]
        up = F.interpolate(self.semantic_up(semantic), size=size, mode="bilinear",
                           align_corners=False)
        high = self.detail_keep(detail) * torch.sigmoid(up)
        low = self.detail_down(detail) * torch.sigmoid(self.semantic_keep(semantic))
        low = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
        return self.fuse(high + low)


class SegHead(nn.Module):
    """(N, cin, h, w) -> (N, classes, H, W) logits at `size`: 3x3 conv, dropout, 1x1."""

    def __init__(self, cin: int, mid: int, classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, mid), nn.Dropout(dropout),
                                  nn.Conv2d(mid, classes, 1))

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        return F.interpolate(self.body(x), size=size, mode="bilinear", align_corners=False)


class BiSeNetV2(nn.Module):
    """(N, 3, H, W) float -> logits (N, classes, H, W) for H, W divisible by 32.

    In training mode the forward returns a tuple: the logits, then the four booster heads'
    logits (each (N, classes, H, W)); `rtseg.training` weighs their losses in. Evaluation,
    export and every engine see the logits alone.
    """

    def __init__(self, num_classes: int, head_channels: int = 256,
                 booster_channels: int = 128, detail_channels: tuple[int, int] = (64, 64)) -> None:
        super().__init__()
        self.detail = DetailBranch(*detail_channels)
        self.semantic = SemanticBranch()
        self.aggregate = GuidedAggregation(128)
        self.head = SegHead(128, head_channels, num_classes)
        self.boosters = nn.ModuleList(SegHead(c, booster_channels, num_classes)
                                      for c in (16, 32, 64, 128))

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        *stages, context = self.semantic(x)
        logits = self.head(self.aggregate(self.detail(x), context), size)
        if not self.training:
            return logits
        return (logits, *(head(f, size) for head, f in zip(self.boosters, stages)))
