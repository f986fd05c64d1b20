"""`rtseg adjust`: logit adjustment folded into the output bias, a new input size, and clear
errors; on real checkpoints trained for a few steps."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from rtseg.checkpoint import load_checkpoint
from rtseg.cli import main
from rtseg.errors import RtsegError
from rtseg.models import MODELS, build_model
from rtseg.training.adjust import adjust_checkpoint, find_output_bias


def train_weighted(folder, classes: int, half: bool):
    """A fine LR-ASPP (refine blocks, as the CamVid model) trained 2 steps with class weights."""
    from rtseg.config import DataConfig, ModelConfig, OutputConfig, TrainConfig, TrainParams
    from rtseg.training.loop import train

    out = folder / "weighted.pt"
    cfg = TrainConfig(
        model=ModelConfig(kwargs={"fine": True, "refine": 8, "refine2": 8, "refine1": 8}),
        data=DataConfig(height=64, width=96, train_size=8, val_size=2),
        train=TrainParams(steps=2, batch_size=2, eval_every=2, warmup_steps=1, device="cpu",
                          class_weights=tuple(0.5 + 0.75 * i for i in range(classes))),
        output=OutputConfig(path=str(out), logs=str(folder / "logs"), half=half),
    )
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def weighted(tmp_path_factory, tiny_checkpoint):
    classes = len(load_checkpoint(tiny_checkpoint).meta.classes)
    return train_weighted(tmp_path_factory.mktemp("weighted"), classes, half=False)


def logits(ckpt, x):
    with torch.no_grad():
        return ckpt.build("cpu")(x)


def test_adjusted_logits_are_the_originals_minus_tau_log_w(weighted, tmp_path):
    out = tmp_path / "adjusted.pt"
    record = adjust_checkpoint(weighted, out, tau=0.5, input_size=(96, 128))
    before, after = load_checkpoint(weighted), load_checkpoint(out)
    weights = before.meta.recipe["train"]["class_weights"]
    shift = torch.tensor([-0.5 * math.log(w) for w in weights])
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    moved = logits(after, x) - logits(before, x)
    # FP32 weights: the only change is one bias, so the shift is exact to float rounding
    torch.testing.assert_close(moved, shift[None, :, None, None].expand_as(moved),
                               atol=1e-4, rtol=0)
    assert record["bias"] == "net.refine1.3.bias" and record["tau"] == 0.5
    assert after.meta.input_size == (96, 128)
    assert after.meta.recipe["adjust"]["input_size_before"] == list(before.meta.input_size)
    assert after.meta.recipe["adjust"]["from_sha256"] == before.sha256
    # everything else is as trained
    assert after.meta.classes == before.meta.classes
    assert after.meta.recipe["train"] == before.meta.recipe["train"]


def test_half_checkpoints_stay_half_and_shift_within_fp16_rounding(tmp_path, tiny_checkpoint):
    classes = len(load_checkpoint(tiny_checkpoint).meta.classes)
    src = train_weighted(tmp_path, classes, half=True)
    out = tmp_path / "adjusted.pt"
    adjust_checkpoint(src, out, tau=1.0)
    after = load_checkpoint(out)
    assert all(v.dtype == torch.float16 for v in after.state_dict.values()
               if v.is_floating_point())
    before = load_checkpoint(src)
    shift = torch.tensor([-math.log(w) for w in before.meta.recipe["train"]["class_weights"]])
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    moved = logits(after, x) - logits(before, x)
    # the new bias is stored in FP16: off by at most half an ulp of |bias| (< 2**-11 relative)
    name = "net.refine1.3.bias"
    bound = float(after.state_dict[name].float().abs().max()) * 2.0 ** -11 + 1e-4
    torch.testing.assert_close(moved, shift[None, :, None, None].expand_as(moved),
                               atol=bound, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_a_bias_that_shifts_its_logits(name):
    kwargs = {"fine": True, "refine": 8, "refine2": 8, "refine1": 8} if name.startswith(
        "lraspp") else {}
    model = build_model(name, 4, **kwargs).eval()
    found = find_output_bias(model, 4)
    param = dict(model.named_parameters())[found]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        base = model(x)
        param.add_(torch.tensor([1.0, -2.0, 0.0, 3.0]))
        moved = model(x) - base
    assert torch.allclose(moved[0, :, 5, 7], torch.tensor([1.0, -2.0, 0.0, 3.0]), atol=1e-4)


def test_a_model_without_such_a_bias_is_refused():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh())
    with pytest.raises(RtsegError, match="no layer's bias"):
        find_output_bias(model, 4)


def test_drop_removes_one_correction_and_keeps_every_other_weight(weighted, tmp_path):
    """The fine LR-ASPP adds refine1's correction over the image to its logits: without it,
    the logits are the original ones minus that correction, and the weights left are the
    original tensors."""
    out = tmp_path / "dropped.pt"
    record = adjust_checkpoint(weighted, out, drop=("refine1",))
    before, after = load_checkpoint(weighted), load_checkpoint(out)
    assert after.meta.model_kwargs["refine1"] == 0 and before.meta.model_kwargs["refine1"] == 8
    assert record["dropped"] == ["refine1"] and after.meta.recipe["adjust"] == record
    gone = set(before.state_dict) - set(after.state_dict)
    assert gone and all(".refine1." in k for k in gone)
    assert all(torch.equal(v, before.state_dict[k]) for k, v in after.state_dict.items())
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    model = before.build("cpu")
    with torch.no_grad():
        fix = model.net.refine1(torch.cat([logits(after, x), x], dim=1))
    assert fix.abs().max() > 1e-3  # trained 2 steps: the correction is not zero
    assert torch.allclose(logits(before, x), logits(after, x) + fix, atol=1e-5)


def test_the_decoder_of_camvid_pt_compiles_to_a_pixel_shuffle_the_engine_argmaxes_under(
        weighted, tmp_path):
    """camvid.pt's form (refine2, no refine1) through `rtseg compile --format openvino`:
    its full-resolution upsampling is exported as a grouped convolution and a
    DepthToSpace (rtseg.models.upsample), the FP32 engine's logits are eager's, and the
    node's graph takes the argmax before the shuffle with eager's classes."""
    pytest.importorskip("openvino")
    import openvino as ov

    from rtseg.backends import load_backend
    from rtseg.backends.openvino_backend import with_argmax
    from rtseg.config import CompileConfig
    from rtseg.export import compile_checkpoint
    from rtseg.models import logits_to_classes

    form = tmp_path / "camvid-form.pt"
    adjust_checkpoint(weighted, form, drop=("refine1",))
    built = compile_checkpoint(CompileConfig(
        checkpoint=str(form), format="openvino", precision="fp32", height=64, width=96,
        out=str(tmp_path), device="cpu", frames=4)).path
    ir = ov.Core().read_model(built.with_suffix(".xml"))
    assert ir.get_results()[0].input_value(0).get_node().get_type_name() == "DepthToSpace"
    fused = [op for op in with_argmax(ir).get_ordered_ops()
             if op.get_type_name() == "DepthToSpace"]
    assert [op.get_input_element_type(0) for op in fused] == [ov.Type.u8]
    backend = load_backend(str(built), "cpu")
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    want = logits(load_checkpoint(form), x)
    got = backend(x)
    assert torch.allclose(got, want, atol=1e-3, rtol=0)
    same = (backend.classes(x) == logits_to_classes(want)).float().mean()
    assert same >= 0.999  # FP32: only exact near-ties may go the other way
    # ONNX Runtime's export keeps the two interpolations (its Resize is the faster there)
    import onnx

    onnx_engine = compile_checkpoint(CompileConfig(
        checkpoint=str(form), format="onnx", height=64, width=96, out=str(tmp_path),
        device="cpu", frames=4)).path
    kinds = {node.op_type for node in onnx.load(str(onnx_engine.with_suffix(".onnx"))).graph.node}
    assert "Resize" in kinds and "DepthToSpace" not in kinds


def fails(*args: str) -> str:
    result = CliRunner().invoke(main, ["adjust", *args])
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("rtseg: error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_decoder_ablation_drops_only_the_named_corrections(weighted, tmp_path):
    """benchmarks/decoder_ablation.py's variants keep every other weight unchanged, without
    refine1 the logits are the full network's minus refine1's correction, and a checkpoint
    that has already lost refine1 (camvid.pt) gets only the variant that still removes one."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "decoder_ablation", Path(__file__).resolve().parents[1] / "benchmarks"
        / "decoder_ablation.py")
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    paths = ablation.write_variants(str(weighted), tmp_path / "all")
    assert list(paths) == list(ablation.VARIANTS)
    full = load_checkpoint(paths["as trained"])
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    model = full.build("cpu")  # LogitsOnly(FineLRASPP): (N, 3, H, W) -> (N, C, H, W)
    for name, (change, once) in ablation.VARIANTS.items():
        ckpt = load_checkpoint(paths[name])
        assert all(ckpt.meta.model_kwargs[k] == 0 for k in change)
        assert bool(ckpt.meta.model_kwargs.get("upsample_once")) == once
        assert set(ckpt.state_dict) <= set(full.state_dict)
        assert all(torch.equal(v, full.state_dict[k]) for k, v in ckpt.state_dict.items())
        dropped = [k for k in full.state_dict if k not in ckpt.state_dict]
        assert bool(dropped) == bool(change)
        assert all(any(f".{c}." in k for c in change) for k in dropped)
    with torch.no_grad():  # refine1 corrects the full-resolution logits over the image
        whole = model(x)
        partial = load_checkpoint(paths["without refine1"]).build("cpu")(x)
        fix = model.net.refine1(torch.cat([partial, x], dim=1))
    assert not torch.allclose(fix, torch.zeros_like(fix))
    assert torch.allclose(whole, partial + fix, atol=1e-4)
    again = ablation.write_variants(str(paths["without refine1"]), tmp_path / "again")
    assert list(again) == ["as trained", "without refine1 and refine2", "upsampled once"]
    both = load_checkpoint(again["without refine1 and refine2"]).meta.model_kwargs
    assert both["refine1"] == 0 and both["refine2"] == 0


def test_upsample_once_keeps_every_weight_and_changes_only_the_upsampling(weighted, tmp_path):
    """`--upsample-once`: the same tensors, the kwarg and the record say so, and the logits
    are the bilinear upsampling of the stride-2 sum (tests/test_models.py checks the
    formula): close to the original's, not equal."""
    out = tmp_path / "once.pt"
    record = adjust_checkpoint(weighted, out, drop=("refine1",), upsample_once=True)
    before, after = load_checkpoint(weighted), load_checkpoint(out)
    assert record["upsample_once"] is True and after.meta.recipe["adjust"] == record
    assert after.meta.model_kwargs["upsample_once"] is True
    assert after.meta.model_kwargs["refine1"] == 0
    assert all(torch.equal(v, before.state_dict[k]) for k, v in after.state_dict.items())
    dropped = tmp_path / "dropped.pt"
    adjust_checkpoint(weighted, dropped, drop=("refine1",))
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    a, b = logits(load_checkpoint(dropped), x), logits(after, x)
    assert not torch.equal(a, b)
    assert (a - b).abs().max() < 0.5 * a.abs().max()


def test_errors_name_the_problem(tiny_checkpoint, weighted, tmp_path):
    out = str(tmp_path / "x.pt")
    assert "class_weights" in fails(str(tiny_checkpoint), "--out", out, "--tau", "0.5")
    assert "multiples of 32" in fails(str(weighted), "--out", out, "--input-size", "100x128")
    assert "HxW" in fails(str(weighted), "--out", out, "--input-size", "big")
    assert "nothing to change" in fails(str(weighted), "--out", out)
    assert "can be dropped" in fails(str(weighted), "--out", out, "--drop", "backbone")
    assert "has no refine1" in fails(str(tiny_checkpoint), "--out", out, "--drop", "refine1")
    assert "no stride-2 decoder" in fails(str(tiny_checkpoint), "--out", out, "--upsample-once")
    assert "no stride-2 decoder" in fails(str(weighted), "--out", out, "--drop", "refine2",
                                          "--upsample-once")
    assert "does not exist" in fails(str(tmp_path / "none.pt"), "--out", out, "--tau", "1")
    assert not (tmp_path / "x.pt").exists()


def test_console_script_writes_a_checkpoint_eval_reads(weighted, tmp_path):
    out = tmp_path / "adjusted.pt"
    done = subprocess.run([sys.executable, "-m", "rtseg", "adjust", str(weighted), "--out",
                           str(out), "--tau", "0.25", "--input-size", "64x64"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["input_size"] == [64, 64]
    done = subprocess.run([sys.executable, "-m", "rtseg", "eval", str(out), "--count", "2",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert 0.0 <= json.loads(done.stdout)["miou"] <= 1.0


def test_drivable_classes_travel_with_the_checkpoint_into_its_engine(tiny_checkpoint,
                                                                    tmp_path):
    """--drivable rewrites which classes are drivable, weights untouched; the engine
    compiled from it carries the choice, so `run` / `serve` need no flag."""
    from rtseg.backends import load_backend
    from rtseg.export.cache import cached_engine

    out = tmp_path / "pavement.pt"
    record = adjust_checkpoint(tiny_checkpoint, out, drivable=("sidewalk",))
    before, after = load_checkpoint(tiny_checkpoint), load_checkpoint(out)
    assert after.meta.drivable == ("sidewalk",) and record["drivable"] == ["sidewalk"]
    assert record["drivable_before"] == list(before.meta.drivable)
    assert after.meta.recipe["adjust"]["drivable"] == ["sidewalk"]
    assert before.state_dict.keys() == after.state_dict.keys()
    assert all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in before.state_dict)
    manifest = cached_engine(str(out), "onnx", "cpu", tmp_path / "cache")
    with load_backend(str(manifest), "cpu") as engine:
        assert engine.spec.drivable == ("sidewalk",)
    with pytest.raises(RtsegError, match="--drivable grass: name one or more"):
        adjust_checkpoint(tiny_checkpoint, tmp_path / "x.pt", drivable=("grass",))
    assert not (tmp_path / "x.pt").exists()
