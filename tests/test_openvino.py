"""OpenVINO engines: compile, manifest, backend, parity gate, refusals, INT8, cache."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from rtseg.backends import load_backend  # noqa: E402
from rtseg.backends.openvino_backend import openvino_machine, openvino_version  # noqa: E402
from rtseg.backends.preprocess import Preprocessor, frames_batch  # noqa: E402
from rtseg.config import CompileConfig  # noqa: E402
from rtseg.errors import RtsegError  # noqa: E402
from rtseg.export import compile_checkpoint, resolve_format, resolve_precision  # noqa: E402
from rtseg.export.parity import parity_frames  # noqa: E402
from rtseg.manifest import read_manifest, write_manifest  # noqa: E402
from rtseg.models import logits_to_classes  # noqa: E402
from rtseg.stream.pipeline import Pipeline  # noqa: E402

SIZE = (128, 224)
BEST = "bf16" if openvino_machine()["bf16"] else "fp32"


def compile_demo(out: Path, precision: str, size=SIZE, **options) -> Path:
    cfg = CompileConfig(checkpoint="demo", format="openvino", precision=precision,
                        height=size[0], width=size[1], out=str(out), device="cpu", frames=4,
                        **options)
    return compile_checkpoint(cfg).path


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> dict[str, Path]:
    """The demo checkpoint compiled as FP32, and through the engine cache (`rtseg run
    --engine openvino`) in this CPU's best precision (BF16 where it has it)."""
    from rtseg.export.cache import cached_engine

    out = tmp_path_factory.mktemp("openvino")
    built = {"fp32": compile_demo(out, "fp32")}
    built["cache"] = cached_engine("demo", "openvino", "cpu", out / "cache", input_size=SIZE)
    built[BEST] = built["cache"]
    return built


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of pixels whose argmax class is the same in two (N, C, H, W) logits."""
    return float((logits_to_classes(a) == logits_to_classes(b)).float().mean())


@pytest.mark.parametrize("precision", sorted({"fp32", BEST}))
def test_engine_passes_the_gate_and_its_manifest_says_how_it_was_built(engines, precision):
    path = engines[precision]
    manifest = read_manifest(path)
    assert manifest.format == "openvino" and manifest.precision == precision
    assert manifest.engine.endswith(".xml") and (path.parent / manifest.engine).is_file()
    assert (path.parent / manifest.engine).with_suffix(".bin").is_file()
    assert not list(path.parent.glob("*.partial*")) and not list(path.parent.glob("*.onnx"))
    assert manifest.versions["openvino"] == openvino_version()
    machine = openvino_machine()
    assert manifest.device["name"] == machine["name"]
    assert manifest.device["bf16"] == machine["bf16"] and "vnni" in manifest.device
    used = manifest.runtime["inference_precision"]
    assert used == {"fp32": "f32", "bf16": "bf16"}[precision]
    assert manifest.runtime["performance_hint"] == "LATENCY"
    parity = manifest.parity
    assert parity["passed"] and parity["threshold_pct"] == {"fp32": 99.0, "bf16": 99.5}[precision]
    if precision == "fp32":
        assert parity["mask_agreement_pct"] == 100.0  # same float maths, other kernels


@pytest.mark.parametrize("precision", sorted({"fp32", BEST}))
def test_backend_loads_by_manifest_and_by_xml_and_computes_eager_masks(engines, precision):
    reference = load_backend("demo", "cpu")
    x = Pipeline(reference).preprocess(parity_frames(1)[0])
    x = torch.nn.functional.interpolate(x, size=SIZE, mode="bilinear")
    for model in (engines[precision], engines[precision].with_suffix(".xml")):
        with load_backend(str(model), "cpu") as backend:
            assert type(backend).__name__ == "OpenVinoBackend"
            assert backend.dtype == torch.float32 and backend.static_batch == 1
            assert backend.graph_capturable is False and backend.device.type == "cpu"
            out = backend(x)
            assert out.shape == (1, 7, *SIZE) and out.dtype == torch.float32
            # FP32: the same sums in another order; BF16: 8-bit mantissas flip a few edge pixels
            assert agreement(out, reference(x)) >= (0.999 if precision == "fp32" else 0.99)
            with pytest.raises(RtsegError, match=r"\(1, 3, 64, 64\)"):
                backend(torch.zeros(1, 3, 64, 64))


def test_pipeline_runs_the_engine_on_frames_of_another_size(engines):
    eager = load_backend("demo", "cpu", input_size=SIZE)  # eager at the engine's input size
    frame = parity_frames(1)[0]
    with load_backend(str(engines[BEST]), "cpu") as backend:
        masks = Pipeline(backend, upsample="classes")(frame)
    assert masks.classes.shape == (360, 640) and masks.drivable.shape == (360, 640)
    want = Pipeline(eager, upsample="classes")(frame)
    assert (masks.drivable == want.drivable).mean() >= 0.99
    assert masks.drivable.any()


def test_an_ir_of_another_openvino_version_is_refused_naming_both(engines, tmp_path):
    manifest = read_manifest(engines["fp32"])
    for suffix in (".xml", ".bin"):
        name = Path(manifest.engine).with_suffix(suffix).name
        (tmp_path / name).write_bytes((engines["fp32"].parent / name).read_bytes())
    old = replace(manifest, versions={**manifest.versions, "openvino": "2023.0.0-10926"})
    write_manifest(tmp_path / "old.json", old)
    with pytest.raises(RtsegError, match=f"2023.0.0-10926.*{openvino_version()}"):
        load_backend(str(tmp_path / "old.json"), "cpu")


@pytest.mark.skipif(openvino_machine()["bf16"], reason="this CPU has BF16")
def test_a_bf16_engine_is_refused_on_a_cpu_without_bf16(engines, tmp_path):
    manifest = read_manifest(engines["fp32"])
    bf16 = replace(manifest, precision="bf16", runtime={"inference_precision_hint": "bf16"})
    write_manifest(engines["fp32"].parent / "bf16.json", bf16)
    with pytest.raises(RtsegError, match="BF16.*--precision fp32"):
        load_backend(str(engines["fp32"].parent / "bf16.json"), "cpu")


@pytest.mark.skipif(openvino_machine()["bf16"], reason="this CPU has BF16")
def test_compiling_bf16_on_a_cpu_without_bf16_is_refused_before_the_build(tmp_path):
    with pytest.raises(RtsegError, match="BF16.*--precision auto or fp32"):
        compile_demo(tmp_path, "bf16")
    assert list(tmp_path.iterdir()) == []  # nothing built, nothing left


def test_auto_picks_openvino_on_the_cpu_and_the_cpus_best_precision():
    assert resolve_format("auto", torch.device("cpu")) == "openvino"
    assert resolve_precision("openvino", torch.device("cpu"), "auto") == BEST
    assert resolve_precision("openvino", torch.device("cpu"), None) == BEST
    with pytest.raises(RtsegError, match="--format openvino"):
        resolve_precision("onnx", torch.device("cpu"), "bf16")


def test_int8_without_calib_is_a_one_line_error(cli_env):
    done = subprocess.run([sys.executable, "-m", "rtseg", "compile", "demo", "--format",
                           "openvino", "--precision", "int8"], capture_output=True, text=True,
                          timeout=120, env=cli_env)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "--calib" in done.stderr


@pytest.fixture(scope="module")
def calib_folder(tmp_path_factory) -> Path:
    """images/ (BGR PNG) and labels/ (class-index PNG, same stems): 8 frames of a generated
    drive, like a camera's."""
    from rtseg.data.synthetic import SceneStream

    root = tmp_path_factory.mktemp("calib")
    for sub in ("images", "labels"):
        (root / sub).mkdir()
    drive = SceneStream(seed=3, height=180, width=320)
    for i in range(8):
        image, label = drive.next()
        assert cv2.imwrite(str(root / "images" / f"s{i}.png"), image[:, :, ::-1])
        assert cv2.imwrite(str(root / "labels" / f"s{i}.png"), label)
    return root


def test_int8_calibrated_on_real_frames_passes_its_gate(tmp_path, calib_folder):
    path = compile_demo(tmp_path, "int8", size=(96, 160), calib=str(calib_folder / "images"),
                        calib_labels=str(calib_folder / "labels"))
    manifest = read_manifest(path)
    assert manifest.precision == "int8" and manifest.versions["nncf"]
    assert manifest.runtime["inference_precision_hint"] == "f32"
    parity = manifest.parity
    assert parity["passed"] and parity["max_miou_drop"] == 1.0
    assert parity["miou_drop"] <= 1.0 and parity["threshold_pct"] is None
    with load_backend(str(path), "cpu") as backend:
        masks = Pipeline(backend, upsample="classes")(parity_frames(1)[0])
    assert masks.drivable.shape == (360, 640) and masks.drivable.any()


def test_labels_that_do_not_fit_are_named(tmp_path, calib_folder):
    labels = tmp_path / "labels"
    labels.mkdir()
    cv2.imwrite(str(labels / "s0.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(RtsegError, match=r"s0.png is 10x10, its image 320x180"):
        compile_demo(tmp_path, "fp32", size=(64, 96), calib=str(calib_folder / "images"),
                     calib_labels=str(labels))
    with pytest.raises(RtsegError, match="--calib-labels needs --calib"):
        CompileConfig(checkpoint="demo", calib_labels=str(labels))


def test_a_static_batch_spreads_frames_over_infer_requests(tmp_path):
    path = compile_demo(tmp_path, "fp32", size=(64, 96), batch=2)
    reference = load_backend("demo", "cpu")
    x = torch.randn(2, 3, 64, 96)
    with load_backend(str(path), "cpu") as backend:
        assert backend.static_batch == 2
        assert backend.runtime_info["performance_hint"] == "THROUGHPUT"
        out = backend(x)
        assert agreement(out, reference(x)) >= 0.999
        assert agreement(out[1:], backend(x.flip(0))[:1]) == 1.0  # frame order kept
        classes = backend.classes(x)  # the argmax in the engine, over the two requests
        assert classes.shape == (2, 64, 96) and classes.dtype == torch.uint8
        assert (classes.long() == logits_to_classes(out)).float().mean() >= 0.999


@pytest.mark.parametrize("precision", sorted({"fp32", BEST}))
def test_the_engine_takes_the_argmax_itself_for_the_node(engines, precision):
    x = torch.randn(1, 3, *SIZE)
    with load_backend(str(engines[precision]), "cpu") as backend:
        assert backend.fused_argmax
        logits, classes = backend(x), backend.classes(x)
        assert classes.shape == (1, *SIZE) and classes.dtype == torch.uint8
        # the same graph up to its last op; a stable TopK picks the first class on ties, as
        # argmax does (BF16: a few near-ties may round the other way in the fused graph)
        same = (classes.long() == logits_to_classes(logits)).float().mean()
        assert same >= (0.999 if precision == "fp32" else 0.99)
        frame = parity_frames(1)[0]
        fused = Pipeline(backend, upsample="classes")(frame)  # uses frames_to_classes()
        host = Pipeline(backend, upsample="logits")(frame)
    assert fused.classes.shape == host.classes.shape == (360, 640)
    assert (fused.classes == host.classes).mean() >= 0.95  # nearest vs bilinear edges


@pytest.mark.parametrize("precision", sorted({"fp32", BEST}))
def test_the_engine_normalises_uint8_frames_itself_with_the_hosts_masks(engines, precision):
    frames = parity_frames(2)  # 360x640 BGR; the engine takes them at its input size
    with load_backend(str(engines[precision]), "cpu") as backend:
        assert backend.fused_preprocess
        prepare = Preprocessor(SIZE, backend.spec.mean, backend.spec.std)
        host = torch.cat([backend.classes(prepare(f)) for f in frames])
        inside = torch.cat([backend.frames_to_classes(frames_batch([f], SIZE)) for f in frames])
        assert inside.shape == host.shape == (2, *SIZE) and inside.dtype == torch.uint8
        # the same maths in another order: float rounding, then BF16's, may flip near-ties
        same = (inside == host).float().mean()
        assert same >= (0.999 if precision == "fp32" else 0.99)
        masks = Pipeline(backend, upsample="classes")(frames[0])  # resize here, rest inside
        want = cv2.resize(inside[0].numpy(), (640, 360), interpolation=cv2.INTER_NEAREST)
        assert (masks.classes == want).all()
        with pytest.raises(RtsegError, match="uint8"):
            backend.frames_to_classes(frames_batch(frames[:1], SIZE).float())
        with pytest.raises(RtsegError, match=r"does not fit the engine's \(1, 128, 224, 3\)"):
            backend.frames_to_classes(frames_batch(frames[:1], (64, 96)))


def test_a_static_batch_takes_frames_over_its_infer_requests(tmp_path):
    path = compile_demo(tmp_path, "fp32", size=(64, 96), batch=2)
    frames = parity_frames(2)
    with load_backend(str(path), "cpu") as backend:
        prepare = Preprocessor((64, 96), backend.spec.mean, backend.spec.std)
        host = backend.classes(torch.cat([prepare(f) for f in frames]))
        inside = backend.frames_to_classes(frames_batch(frames, (64, 96)))
        assert inside.shape == (2, 64, 96)
        assert (inside == host).float().mean() >= 0.999
        flipped = backend.frames_to_classes(frames_batch(frames[::-1], (64, 96)))
        assert (flipped[1] == inside[0]).all()  # frame order kept


def test_the_fused_argmax_takes_the_first_class_on_ties_at_any_shape():
    """`with_argmax` on a bare IR whose logits are its input (batch and size dynamic): the
    class map is (N, H, W) u8, ties go to the first class as torch's argmax sends them."""
    import openvino as ov
    from openvino import opset11 as ops

    from rtseg.backends.openvino_backend import with_argmax

    x = ops.parameter(ov.PartialShape([-1, 5, -1, -1]), ov.Type.f32)
    model = ov.Model([ops.result(ops.add(x, ops.constant(np.float32(0))))], [x])
    compiled = ov.Core().compile_model(with_argmax(model), "CPU")
    rng = np.random.default_rng(0)
    for shape in ((1, 5, 4, 6), (3, 5, 7, 2)):
        logits = rng.integers(0, 3, shape).astype(np.float32)  # many exact ties
        classes = compiled({0: logits})[0]
        assert classes.shape == (shape[0], *shape[2:]) and classes.dtype == np.uint8
        want = torch.from_numpy(logits).argmax(1).numpy()
        assert (classes == want).all()


def test_engine_cache_builds_openvino_once(engines):
    from rtseg.export.cache import cached_engine

    first = engines["cache"]
    assert read_manifest(first).format == "openvino" and read_manifest(first).precision == BEST
    key = json.loads(first.with_name(first.stem + ".key.json").read_text())
    assert key["versions"]["openvino"] == openvino_version() and key["precision"] == BEST
    assert key["device"]["name"] == openvino_machine()["name"]
    stamp = first.stat().st_mtime_ns
    assert cached_engine("demo", "auto", "cpu", first.parent, input_size=SIZE) == first
    assert first.stat().st_mtime_ns == stamp  # auto on a CPU: the same engine, reused


@pytest.mark.parametrize("mode", ["depth_first", "blocks_first"])
def test_the_fused_argmax_goes_before_a_pixel_shuffle_with_the_same_classes(mode):
    """Logits made by a DepthToSpace (the fine LR-ASPP's upsampling, rtseg.models.upsample):
    `with_argmax` takes the argmax on the coarse phases and shuffles the u8 class map only,
    with the classes (ties included) of an argmax over the shuffled logits."""
    import openvino as ov
    from openvino import opset11 as ops

    from rtseg.backends.openvino_backend import with_argmax

    x = ops.parameter(ov.PartialShape([-1, 5 * 16, -1, -1]), ov.Type.f32)
    model = ov.Model([ops.result(ops.depth_to_space(x, mode, 4))], [x])
    fused = with_argmax(model)
    shuffles = [op for op in fused.get_ordered_ops() if op.get_type_name() == "DepthToSpace"]
    assert [op.get_input_element_type(0) for op in shuffles] == [ov.Type.u8]
    core, rng = ov.Core(), np.random.default_rng(1)
    plain, classes = core.compile_model(model, "CPU"), core.compile_model(fused, "CPU")
    for shape in ((1, 80, 3, 5), (2, 80, 4, 1)):
        coarse = rng.integers(0, 3, shape).astype(np.float32)  # many exact ties
        logits = plain({0: coarse})[0]  # (N, 5, 4h, 4w)
        got = classes({0: coarse})[0]
        assert got.shape == (shape[0], 4 * shape[2], 4 * shape[3]) and got.dtype == np.uint8
        assert (got == torch.from_numpy(logits).argmax(1).numpy()).all()
