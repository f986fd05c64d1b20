"""Model builders: name + keyword arguments -> `nn.Module` returning `(N, C, H, W)` logits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rtseg.errors import RtsegError, type_name


class LogitsOnly(nn.Module):
    """Wraps a torchvision segmentation model (which returns a dict) to return `out` only."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) float -> logits (N, C, H, W)."""
        return self.net(x)["out"]


def _tv(builder_name: str) -> Callable[..., tuple[nn.Module, nn.Module]]:
    """A torchvision segmentation builder -> (model, backbone module)."""

    def build(num_classes: int) -> tuple[nn.Module, nn.Module]:
        from torchvision.models import segmentation

        builder = getattr(segmentation, builder_name)
        kwargs = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if builder_name.startswith("deeplabv3"):
            kwargs["aux_loss"] = False
        net = builder(**kwargs)
        return LogitsOnly(net), net.backbone

    return build


def _smp(arch: str, default_encoder: str) -> Callable[..., tuple[nn.Module, nn.Module]]:
    """A segmentation-models-pytorch architecture -> (model, encoder module)."""

    def build(num_classes: int, encoder: str = default_encoder) -> tuple[nn.Module, nn.Module]:
        import segmentation_models_pytorch as smp

        try:
            net = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None,
                                     classes=num_classes)
        except KeyError as exc:
            raise RtsegError(
                f"unknown encoder {encoder!r} for {arch}: pick one of "
                "segmentation_models_pytorch.encoders.get_encoder_names()"
            ) from exc
        return net, net.encoder

    return build


def _lraspp(num_classes: int, fine: bool = False, refine: int = 0,
            refine2: int = 0, refine1: int = 0, context: int = 0,
            upsample_once: bool = False) -> tuple[nn.Module, nn.Module]:
    """torchvision's LR-ASPP MobileNetV3-Large; `fine` adds rtseg's stride-4 skip,
    `refine` a stride-4 decoder, `refine2` a stride-2 and `refine1` a full-resolution one
    of that width, `context` a dilated block on the stride-16 features, `upsample_once`
    sums the stride-2 correction before one full-resolution upsampling (see
    rtseg.models.lraspp) -> (model, backbone)."""
    from rtseg.models.lraspp import build_lraspp

    net, backbone = build_lraspp(num_classes, fine=bool(fine), refine=int(refine),
                                 refine2=int(refine2), refine1=int(refine1),
                                 context=int(context), upsample_once=bool(upsample_once))
    return LogitsOnly(net), backbone


def _bisenetv2(num_classes: int, head_channels: int = 256,
               detail_channels: tuple[int, int] = (64, 64)) -> tuple[nn.Module, nn.Module]:
    """rtseg's own BiSeNetV2 -> (model, semantic branch); `detail_channels` (paper: 64, 64)
    are the detail branch's widths at 1/2 and 1/4, its cost on a CPU."""
    from rtseg.models.bisenetv2 import BiSeNetV2

    net = BiSeNetV2(num_classes, head_channels=head_channels,
                    detail_channels=tuple(detail_channels))
    return net, net.semantic


@dataclass(frozen=True)
class ModelInfo:
    """What `rtseg models` shows for one model."""

    name: str
    source: str
    description: str
    build: Callable[..., tuple[nn.Module, nn.Module]]


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("lraspp_mobilenet_v3", "torchvision",
                  "LR-ASPP, MobileNetV3-Large; real time; fine=true adds a stride-4 skip, "
                  "refine=K / refine2=K / refine1=K a stride-4 / stride-2 / full-resolution "
                  "decoder, context=K a dilated context block at stride 16, upsample_once=true "
                  "one full-resolution upsampling (after the stride-2 decoder)",
                  _lraspp),
        ModelInfo("deeplabv3_mobilenet_v3", "torchvision", "DeepLabV3, MobileNetV3-Large",
                  _tv("deeplabv3_mobilenet_v3_large")),
        ModelInfo("deeplabv3_resnet50", "torchvision", "DeepLabV3, ResNet-50, dilated",
                  _tv("deeplabv3_resnet50")),
        ModelInfo("unet", "segmentation-models-pytorch", "U-Net; encoder= (default resnet18)",
                  _smp("Unet", "resnet18")),
        ModelInfo("deeplabv3plus", "segmentation-models-pytorch",
                  "DeepLabV3+; encoder= (default resnet18)", _smp("DeepLabV3Plus", "resnet18")),
        ModelInfo("bisenetv2", "rtseg", "BiSeNetV2; real time, made to train from scratch",
                  _bisenetv2),
    )
}


def model_info(name: str) -> ModelInfo:
    """The entry for `name`, or an RtsegError listing the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise RtsegError(
            f"unknown model {name!r}: known models are {', '.join(MODELS)} (see `rtseg models`)"
        ) from None


def build_model(name: str, num_classes: int, backbone_weights: str | Path | None = None,
                **kwargs) -> nn.Module:
    """Build model `name` with random weights -> module mapping (N,3,H,W) to (N,C,H,W).

    backbone_weights: optional local file with a state dict for the backbone/encoder
    (e.g. an ImageNet classifier's weights); keys are matched after dropping a leading
    `features.` / `backbone.` / `encoder.` prefix.
    """
    info = model_info(name)
    try:
        model, backbone = info.build(num_classes, **kwargs)
    except (TypeError, ValueError) as exc:
        raise RtsegError(f"bad arguments {kwargs} for model {name!r}: {exc}") from exc
    if backbone_weights is not None:
        load_backbone(backbone, backbone_weights)
    return model


def load_backbone(backbone: nn.Module, path: str | Path) -> None:
    """Load matching tensors of a local state-dict file into `backbone`; fail if none match."""
    path = Path(path)
    if not path.is_file():
        raise RtsegError(f"backbone weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RtsegError(f"backbone weights file {path} could not be read: {exc}") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise RtsegError(f"backbone weights file {path} does not hold a state dict")
    own = backbone.state_dict()
    matched = {}
    for key, value in state.items():
        for prefix in ("", "features.", "backbone.", "encoder.", "module."):
            short = key[len(prefix):] if key.startswith(prefix) else None
            if short in own and own[short].shape == value.shape:
                matched[short] = value
                break
    if not matched:
        raise RtsegError(f"no tensor of {path} fits the backbone: is it the right architecture?")
    backbone.load_state_dict(matched, strict=False)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_models(num_classes: int = 7) -> str:
    """A table of every model: name, library, parameters (built with `num_classes`), notes."""
    lines = [f"{'name':<24} {'from':<28} {'params':>10}  description"]
    for info in MODELS.values():
        params = count_parameters(build_model(info.name, num_classes))
        lines.append(f"{info.name:<24} {info.source:<28} {params / 1e6:>9.2f}M  {info.description}")
    return "\n".join(lines)


def backbone_of(model: nn.Module) -> nn.Module:
    """The pretrained-able part (torchvision `backbone`, smp `encoder`, BiSeNetV2's
    `semantic` branch), e.g. to freeze it."""
    net = model.net if isinstance(model, LogitsOnly) else model
    for name in ("backbone", "encoder", "semantic"):
        if hasattr(net, name):
            return getattr(net, name)
    raise RtsegError(f"{type_name(net)} has no backbone/encoder to freeze")


def logits_to_classes(logits: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) logits -> (N, H, W) int64 classes. C == 1 is a binary (sigmoid) model:
    class 1 where the logit is > 0. Channels-last argmax: ~15x faster on a CPU than NCHW."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.permute(0, 2, 3, 1).argmax(-1)


def resize_logits(logits: torch.Tensor, size) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, H, W) at `size`, bilinear, channels-last (see logits_to_classes)."""
    logits = logits.contiguous(memory_format=torch.channels_last)
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = nn.functional.interpolate(logits, size=tuple(size), mode="bilinear",
                                           align_corners=False)
    return logits
