"""Segmentation models by name: a plain dict of builders, no registry magic.

Every model maps `(N, 3, H, W) float` to logits `(N, C, H, W)` at input resolution
for any H, W divisible by 32. Architectures come from torchvision and
segmentation-models-pytorch; weights are random unless a local backbone file is named
(nothing is ever downloaded).
"""

from __future__ import annotations

from rtseg.models.builders import (
    MODELS,
    ModelInfo,
    backbone_of,
    build_model,
    count_parameters,
    describe_models,
    logits_to_classes,
    model_info,
    resize_logits,
)

__all__ = ["MODELS", "ModelInfo", "backbone_of", "build_model", "count_parameters",
           "describe_models", "logits_to_classes", "model_info", "resize_logits"]
