import pytest
import torch
from torch.nn import functional as F

from rtseg.errors import RtsegError
from rtseg.models import MODELS, build_model, count_parameters, describe_models

EXPECTED = {"lraspp_mobilenet_v3", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3", "unet",
            "deeplabv3plus", "bisenetv2"}


def test_all_required_models_are_named():
    assert EXPECTED <= set(MODELS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("size", [(64, 96), (96, 160)])
def test_logits_at_input_resolution(name, size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_unknown_model_lists_known_names():
    with pytest.raises(RtsegError, match="unknown model 'segformer'.*lraspp_mobilenet_v3"):
        build_model("segformer", 3)


def test_bad_keyword_is_a_clear_error():
    with pytest.raises(RtsegError, match="bad arguments"):
        build_model("lraspp_mobilenet_v3", 3, depth=7)


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(RtsegError, match="unknown encoder"):
        build_model("unet", 3, encoder="resnet999")


def test_smp_encoder_keyword_changes_the_network():
    small = count_parameters(build_model("unet", 3, encoder="resnet18"))
    large = count_parameters(build_model("unet", 3, encoder="resnet34"))
    assert large > small


def test_local_backbone_weights_are_loaded(tmp_path):
    from torchvision.models import mobilenet_v3_large

    torch.manual_seed(1)
    classifier = mobilenet_v3_large(weights=None)
    path = tmp_path / "mnv3.pth"
    torch.save(classifier.state_dict(), path)
    model = build_model("lraspp_mobilenet_v3", 4, backbone_weights=path)
    backbone = model.net.backbone
    assert torch.equal(backbone["0"][0].weight, classifier.features[0][0].weight)
    fresh = build_model("lraspp_mobilenet_v3", 4)
    assert not torch.equal(fresh.net.backbone["0"][0].weight, classifier.features[0][0].weight)


def test_backbone_weights_that_fit_nothing_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(RtsegError, match="no tensor"):
        build_model("unet", 3, backbone_weights=path)
    with pytest.raises(RtsegError, match="does not exist"):
        build_model("unet", 3, backbone_weights=tmp_path / "missing.pth")


def test_describe_models_lists_every_model_with_parameters():
    table = describe_models(7)
    for name in EXPECTED:
        assert name in table
    assert "3.22M" in table  # LR-ASPP MobileNetV3-Large with 7 classes


def test_lraspp_fine_skip_grows_a_plain_lraspp():
    """`fine=True` only adds the stride-4 classifier; it starts at zero, so the grown model
    computes the plain one's stride-8 logits, upsampled via stride 4."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    plain = build_model("lraspp_mobilenet_v3", 5).eval()
    fine = build_model("lraspp_mobilenet_v3", 5, fine=True).eval()
    missing = fine.load_state_dict(plain.state_dict(), strict=False)
    assert missing.unexpected_keys == []
    assert sorted(missing.missing_keys) == ["net.fine_classifier.bias",
                                            "net.fine_classifier.weight"]
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        coarse = plain.net.classifier(plain.net.backbone(x))  # (1, 5, 12, 20)
        expected = F.interpolate(F.interpolate(coarse, size=(24, 40), mode="bilinear"),
                                 size=(96, 160), mode="bilinear")
        assert torch.allclose(fine(x), expected, atol=1e-5)
        fine.net.fine_classifier.bias.fill_(1.0)  # wired in: it moves every logit
        assert torch.allclose(fine(x), expected + 1.0, atol=1e-5)
    assert fine.net.fine_classifier.in_channels == 24  # MobileNetV3-Large's stride-4 width


def test_lraspp_refine_block_grows_a_fine_lraspp_and_needs_fine():
    """`refine=K` only adds the stride-4 decoder; its last convolution starts at zero, so
    the grown model computes what the `fine` model did until it is trained."""
    torch.manual_seed(0)
    fine = build_model("lraspp_mobilenet_v3", 5, fine=True).eval()
    with torch.no_grad():
        fine.net.fine_classifier.weight.normal_()  # a trained-looking skip
    refined = build_model("lraspp_mobilenet_v3", 5, fine=True, refine=8).eval()
    missing = refined.load_state_dict(fine.state_dict(), strict=False)
    assert missing.unexpected_keys == []
    added = {k for k in refined.state_dict() if k.startswith("net.refine.")}
    assert len(added) == 8  # 3x3 conv, BN (5), 1x1 conv (2)
    # BN's load fills in a missing num_batches_tracked itself, so it is not reported
    assert set(missing.missing_keys) == added - {"net.refine.1.num_batches_tracked"}
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        assert torch.allclose(refined(x), fine(x), atol=1e-5)
        refined.net.refine[-1].bias.fill_(1.0)  # wired in: it moves every logit
        assert torch.allclose(refined(x), fine(x) + 1.0, atol=1e-5)
        refined.net.refine[-1].weight.normal_()  # and it sees the stride-4 neighbourhood
        assert not torch.allclose(refined(x), fine(x) + 1.0, atol=1e-3)
    assert refined.net.refine[0].in_channels == 5 + 24
    with pytest.raises(RtsegError, match="fine = true"):
        build_model("lraspp_mobilenet_v3", 5, refine=8)


@pytest.mark.parametrize("name, features", [("refine2", 16), ("refine1", 3)])
def test_lraspp_refine2_and_refine1_add_decoders_that_start_at_zero(name, features):
    """`refine2=K` grows a refined model by a decoder at stride 2 (the 16-channel features
    of the stem's block), `refine1=K` by one at full resolution (the 3 image channels): at
    its zero start exactly the model it grew from."""
    torch.manual_seed(0)
    refined = build_model("lraspp_mobilenet_v3", 5, fine=True, refine=8).eval()
    with torch.no_grad():
        refined.net.refine[-1].weight.normal_()  # a trained-looking stride-4 decoder
    grown = build_model("lraspp_mobilenet_v3", 5, fine=True, refine=8, **{name: 4}).eval()
    missing = grown.load_state_dict(refined.state_dict(), strict=False)
    assert missing.unexpected_keys == []
    assert {k.split(".")[1] for k in missing.missing_keys} == {name}
    x = torch.randn(1, 3, 96, 160)
    block = getattr(grown.net, name)
    with torch.no_grad():
        # refine2's correction is upsampled with the stride-4 logits as one convolution
        # (rtseg.models.upsample): the same sum, up to float rounding
        assert torch.allclose(grown(x), refined(x), atol=1e-4, rtol=0)
        block[-1].weight.normal_()
        delta = grown(x) - refined(x)
    assert delta.abs().amax() > 1e-3  # wired in
    assert block[0].in_channels == 5 + features  # logits + the level's features
    with pytest.raises(RtsegError, match=f"{name} .*fine = true"):
        build_model("lraspp_mobilenet_v3", 5, **{name: 4})


def test_lraspp_upsample_once_sums_at_stride_2_then_upsamples_once():
    """`upsample_once` adds no weights (a checkpoint loads strictly either way); with it
    the output is the bilinear full-resolution upsampling of (stride-4 logits upsampled to
    stride 2 + the stride-2 correction), where by default each is upsampled on its own;
    without a stride-2 decoder it is refused."""
    from torch.nn import functional as F

    torch.manual_seed(0)
    kwargs = {"fine": True, "refine": 8, "refine2": 4}
    plain = build_model("lraspp_mobilenet_v3", 5, **kwargs).eval()
    with torch.no_grad():
        plain.net.refine2[-1].weight.normal_()  # a trained-looking stride-2 decoder
        plain.net.fine_classifier.weight.normal_()  # and stride-4 logits with detail
    once = build_model("lraspp_mobilenet_v3", 5, **kwargs, upsample_once=True).eval()
    once.load_state_dict(plain.state_dict())  # strict: the same tensors
    seen = {}
    once.net.refine2.register_forward_hook(
        lambda mod, args, out: seen.update(at_half=args[0][:, :5], fix=out))
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        got = once(x)
        expected = F.interpolate(seen["at_half"] + seen["fix"], size=(96, 160),
                                 mode="bilinear", align_corners=False)
        assert torch.allclose(got, expected, atol=1e-5)
        assert (got - plain(x)).abs().amax() > 1e-3  # not the default function
    with pytest.raises(RtsegError, match="upsample_once .*set refine2 too"):
        build_model("lraspp_mobilenet_v3", 5, fine=True, refine=8, upsample_once=True)


@pytest.mark.parametrize("base", [{}, {"fine": True, "refine": 8, "refine2": 4}])
def test_lraspp_context_block_grows_a_plain_or_refined_lraspp_from_zero(base):
    """`context=K` adds a dilated block on the stride-16 features whose correction is added
    to the head's stride-8 logits: at its zero start exactly the model it grew from, with
    or without the stride-4 skip; once trained it moves the logits."""
    torch.manual_seed(0)
    before = build_model("lraspp_mobilenet_v3", 5, **base).eval()
    grown = build_model("lraspp_mobilenet_v3", 5, **base, context=16).eval()
    missing = grown.load_state_dict(before.state_dict(), strict=False)
    assert missing.unexpected_keys == []
    assert {k.split(".")[1] for k in missing.missing_keys} == {"context"}
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        assert torch.equal(grown(x), before(x))
        grown.net.context[-1].bias.fill_(1.0)  # wired in: it moves every logit
        assert torch.allclose(grown(x), before(x) + 1.0, atol=1e-5)
    assert grown.net.context[0].in_channels == 960  # MobileNetV3-Large's stride-16 width
    assert [m.dilation for m in grown.net.context if isinstance(m, torch.nn.Conv2d)] == [
        (1, 1), (2, 2), (4, 4), (1, 1)]


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 5, 3, 7), (1, 11, 8, 4)])
def test_upsample_sum_is_the_sum_of_the_two_bilinear_upsamplings(shape):
    """rtseg.models.upsample: bilinear x4 of the stride-4 logits plus x2 of the stride-2
    correction, as one grouped convolution and a pixel shuffle, equals F.interpolate's
    (align_corners=False, borders clamped) to float64 rounding."""
    from rtseg.models.upsample import can_upsample_sum, upsample_sum

    n, c, h, w = shape
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    b = torch.randn(n, c, 2 * h, 2 * w, generator=gen, dtype=torch.float64)
    size = (4 * h, 4 * w)
    want = (F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            + F.interpolate(b, size=size, mode="bilinear", align_corners=False))
    assert can_upsample_sum(a, b, size)
    assert torch.allclose(upsample_sum(a, b), want, atol=1e-12, rtol=0)
    assert not can_upsample_sum(a, b, (4 * h + 1, 4 * w))  # other sizes: F.interpolate
    assert not can_upsample_sum(a, b[..., :-1], size)


def test_the_fine_lraspp_computes_the_same_logits_with_either_upsampling():
    """`use_phase_upsampling(model, False)` (what the ONNX Runtime export does) gives the
    interpolations back: the same logits to float rounding, another graph."""
    from rtseg.models.upsample import use_phase_upsampling

    torch.manual_seed(0)
    model = build_model("lraspp_mobilenet_v3", 5, fine=True, refine=8, refine2=4).eval()
    with torch.no_grad():
        model.net.refine2[-1].weight.normal_()  # a correction that is not zero
        x = torch.randn(1, 3, 64, 96)
        phase = model(x)
        plain = use_phase_upsampling(model, False)(x)
    assert model.net.phase_upsample is False
    assert torch.allclose(phase, plain, atol=1e-4, rtol=0) and not torch.equal(phase, plain)
