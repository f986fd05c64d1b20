"""`rtseg compile`: engines that plain runtimes can run, manifests, and the parity gate."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rtseg.backends import backend_for_manifest, load_backend
from rtseg.backends.preprocess import Preprocessor
from rtseg.config import CompileConfig, RunConfig
from rtseg.errors import RtsegError
from rtseg.export import compile_checkpoint
from rtseg.export.parity import parity_frames, parity_gate
from rtseg.manifest import engine_path, read_manifest, write_manifest

PLAIN_ORT = """
import json, sys
import numpy as np
import onnxruntime as ort
manifest = json.load(open(sys.argv[1]))
session = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
shape = manifest["inputs"][0]["shape"]
(out,) = session.run(None, {manifest["inputs"][0]["name"]: np.zeros(shape, np.float32)})
print(json.dumps({"shape": list(out.shape), "classes": len(manifest["classes"])}))
"""


@pytest.fixture(scope="module")
def onnx_engine(tmp_path_factory) -> Path:
    """The demo checkpoint compiled by the real command line."""
    out = tmp_path_factory.mktemp("engines")
    done = subprocess.run([sys.executable, "-m", "rtseg", "compile", "demo", "--format", "onnx",
                           "--out", str(out), "--device", "cpu", "--frames", "4"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return Path(done.stdout.strip().splitlines()[-1])


def test_plain_onnxruntime_runs_the_engine(onnx_engine):
    manifest = json.loads(onnx_engine.read_text())
    engine = onnx_engine.parent / manifest["engine"]
    done = subprocess.run([sys.executable, "-c", PLAIN_ORT, str(onnx_engine), str(engine)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["shape"] == [1, result["classes"], 192, 352]


def test_manifest_carries_what_it_must(onnx_engine):
    raw = json.loads(onnx_engine.read_text())
    for key in ("format", "precision", "inputs", "outputs", "classes", "drivable_classes",
                "mean", "std", "checkpoint_sha256", "versions", "device", "parity"):
        assert key in raw, key
    assert raw["format"] == "onnx" and raw["precision"] == "fp32"
    assert raw["versions"]["onnxruntime"] and raw["versions"]["torch"]
    parity = raw["parity"]
    assert parity["passed"] and parity["mask_agreement_pct"] >= 99.0
    assert parity["max_logit_error"] < 1e-3 and parity["frames"] == 4


def test_node_runs_the_engine(onnx_engine, endpoint, first_mask):
    cfg = RunConfig(source="demo", model=str(onnx_engine), bind=endpoint, device="cpu",
                    max_frames=5, status_every=0)
    _, header, mask = first_mask(cfg, "demo/drivable")
    assert header.model.endswith("/onnx-fp32") and mask.shape == (360, 640)
    assert 0.2 < mask.mean() < 0.8  # the bundled model finds the road through the engine


def test_a_broken_engine_fails_the_gate(onnx_engine, tmp_path):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    manifest = read_manifest(onnx_engine)
    graph = onnx.load(str(engine_path(onnx_engine, manifest)))
    rng = np.random.default_rng(0)
    heads = [t for t in graph.graph.initializer if t.dims and t.dims[0] == len(manifest.classes)]
    assert heads  # the classifier's weights and biases: one row per class
    for tensor in heads:  # replace the classifier with noise
        noise = rng.normal(size=tuple(tensor.dims)).astype(np.float32)
        tensor.CopyFrom(numpy_helper.from_array(noise, tensor.name))
    onnx.save(graph, str(tmp_path / "broken.onnx"))
    backend = backend_for_manifest(manifest, tmp_path / "broken.onnx", torch.device("cpu"))
    reference = load_backend("demo", "cpu").model
    figures = parity_gate(reference, backend, parity_frames(3),
                          Preprocessor(manifest.input_size, manifest.mean, manifest.std),
                          len(manifest.classes))
    assert not figures["passed"] and figures["mask_agreement_pct"] < 99.0


def test_gate_failure_exits_non_zero_and_the_manifest_says_so(tmp_path, tiny_checkpoint):
    cfg = CompileConfig(checkpoint=str(tiny_checkpoint), format="onnx", out=str(tmp_path),
                        name="strict", device="cpu", frames=2, threshold=100.01)
    with pytest.raises(RtsegError, match="parity gate failed"):
        compile_checkpoint(cfg)
    assert read_manifest(tmp_path / "strict.json").parity["passed"] is False
    # what failed the gate is kept for inspection, but nothing runs it
    with pytest.raises(RtsegError, match=r"strict\.onnx failed its parity gate when it was "
                                         r"compiled \(masks agree on .*compile it again"):
        load_backend(str(tmp_path / "strict.json"), "cpu")


def test_bad_engines_and_inputs_are_named(onnx_engine, tmp_path):
    manifest = read_manifest(onnx_engine)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx graph")
    with pytest.raises(RtsegError, match="junk.onnx"):
        backend_for_manifest(manifest, junk, torch.device("cpu"))
    backend = load_backend(str(onnx_engine), "cpu")
    with pytest.raises(RtsegError, match=r"\(1, 3, 64, 64\).*\(1, 3, 192, 352\)"):
        backend(torch.zeros(1, 3, 64, 64))
    gpu_built = replace(manifest, format="aoti",
                        device={"type": "cuda", "name": "NVIDIA H100", "capability": "9.0"})
    with pytest.raises(RtsegError, match="NVIDIA H100.*cpu"):
        backend_for_manifest(gpu_built, junk, torch.device("cpu"))
    write_manifest(tmp_path / "trt.json", replace(manifest, format="tensorrt", engine=junk.name))
    with pytest.raises(RtsegError, match=r"rtseg\[tensorrt\]"):
        load_backend(str(tmp_path / "trt.json"), "cpu")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RtsegError, match="bad.json"):
        load_backend(str(tmp_path / "bad.json"), "cpu")


def test_failed_export_leaves_nothing_behind(tmp_path, tiny_checkpoint):
    cfg = CompileConfig(checkpoint=str(tiny_checkpoint), format="onnx", out=str(tmp_path),
                        height=50, device="cpu")
    with pytest.raises(RtsegError, match="multiples of 32"):
        compile_checkpoint(cfg)
    with pytest.raises(RtsegError, match="fp16 engines need a CUDA"):
        compile_checkpoint(replace(cfg, height=None, precision="fp16"))
    assert list(tmp_path.iterdir()) == []


def test_engine_cache_compiles_once_and_rebuilds_when_the_key_changes(tmp_path,
                                                                      tiny_checkpoint, caplog):
    import logging

    from rtseg.export.cache import cached_engine

    caplog.set_level(logging.INFO, logger="rtseg")
    first = cached_engine(str(tiny_checkpoint), "auto", "cpu", tmp_path)
    assert read_manifest(first).format == "openvino"  # auto on a CPU
    stamp = first.stat().st_mtime_ns
    assert cached_engine(str(tiny_checkpoint), "auto", "cpu", tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # reused, not rebuilt
    key_file = first.with_name(first.stem + ".key.json")
    key = json.loads(key_file.read_text())
    key["versions"]["torch"] = "1.0.0"  # as if built by another torch
    other = first.with_name(first.stem.rsplit("-", 1)[0] + "-0000000000000000.json")
    first.rename(other)
    key_file.rename(other.with_name(other.stem + ".key.json"))
    other.with_name(other.stem + ".key.json").write_text(json.dumps(key))
    rebuilt = cached_engine(str(tiny_checkpoint), "auto", "cpu", tmp_path)
    assert rebuilt == first and rebuilt.is_file()
    assert "no longer fits" in caplog.text and "1.0.0" in caplog.text


def test_engine_cache_gates_on_the_calib_frames_it_is_given(tmp_path, tiny_checkpoint):
    import cv2

    from rtseg.data import synthetic
    from rtseg.export.cache import cached_engine

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), synthetic.render_scene(rng, 120, 160)[0])
    cache = tmp_path / "cache"
    plain = cached_engine(str(tiny_checkpoint), "openvino", "cpu", cache)
    gated = cached_engine(str(tiny_checkpoint), "openvino", "cpu", cache, calib=str(frames))
    assert gated != plain and read_manifest(gated).parity["passed"]
    assert json.loads(gated.with_name(gated.stem + ".key.json").read_text())["calib"] == \
        str(frames)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0.png").write_bytes(b"not a png")
    with pytest.raises(RtsegError, match="could not be decoded"):
        cached_engine(str(tiny_checkpoint), "openvino", "cpu", cache, calib=str(broken))


@pytest.mark.slow
def test_aotinductor_engine_on_the_cpu(compiled_engine):
    result = compiled_engine("aoti")  # shared with the backend contract's AOTInductor tests
    assert result.manifest.format == "aoti" and result.manifest.parity["passed"]
    assert (result.path.parent / result.manifest.engine).suffix == ".pt2"
    backend = load_backend(str(result.path), "cpu")
    assert backend(torch.zeros(1, 3, 64, 96)).shape == (1, 7, 64, 96)
    assert not list(result.path.parent.glob("*.partial*"))


@pytest.mark.parametrize("fmt", ["tensorrt", "torch-tensorrt"])
def test_tensorrt_formats_say_what_to_install(tmp_path, tiny_checkpoint, fmt):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed: the real build is tested under the tensorrt mark")
    except ImportError:
        pass
    cfg = CompileConfig(checkpoint=str(tiny_checkpoint), format=fmt, out=str(tmp_path),
                        device="cpu", precision="fp32")
    with pytest.raises(RtsegError, match=r"rtseg\[tensorrt\]|--device cuda"):
        compile_checkpoint(cfg)
    assert not list(tmp_path.iterdir())


@pytest.mark.tensorrt
def test_tensorrt_fp16_engine_passes_parity(tmp_path, tiny_checkpoint):
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT engines need a CUDA GPU")
    cfg = CompileConfig(checkpoint=str(tiny_checkpoint), format="tensorrt", out=str(tmp_path),
                        device="cuda", precision="fp16", frames=4)
    result = compile_checkpoint(cfg)
    assert result.manifest.parity["passed"]
    backend = load_backend(str(result.path), "cuda")
    assert backend(torch.zeros(1, 3, 64, 96, device="cuda")).shape == (1, 7, 64, 96)


def test_dynamic_onnx_engine_takes_other_shapes(tmp_path, tiny_checkpoint):
    cfg = CompileConfig(checkpoint=str(tiny_checkpoint), format="onnx", out=str(tmp_path),
                        device="cpu", dynamic=True, frames=2)
    result = compile_checkpoint(cfg)
    assert result.manifest.inputs[0].shape == (-1, 3, -1, -1) and result.manifest.dynamic
    backend = load_backend(str(result.path), "cpu")
    reference = load_backend(str(tiny_checkpoint), "cpu")
    for shape in ((1, 3, 64, 96), (2, 3, 96, 128)):
        x = torch.randn(*shape)
        assert_same_masks(backend(x), reference(x))


def assert_same_masks(engine: torch.Tensor, eager: torch.Tensor) -> None:
    """Engine vs eager logits (N, C, H, W) as the parity gate compares them: argmax masks
    agree (float32 sums in another order move a logit by ~1e-6 of its range, which flips
    only pixels whose top two classes are that close: 99 % leaves room for those), and the
    largest logit error is small against the logits' range (1e-3 of it, ~1000x the
    expected rounding), never an absolute figure: a few-step model's logits reach +-200."""
    assert engine.shape == eager.shape
    agreement = (engine.argmax(1) == eager.argmax(1)).float().mean().item()
    assert agreement >= 0.99, f"masks agree on {100 * agreement:.2f} % of pixels"
    spread = (eager.max() - eager.min()).item()
    error = (engine - eager).abs().max().item()
    assert error <= 1e-3 * spread, f"max logit error {error:.3g} vs logit range {spread:.3g}"
