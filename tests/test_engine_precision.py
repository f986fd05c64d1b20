"""`--precision` of `rtseg run` / `rtseg bench`: the engine cache builds the precision asked
for (int8 calibrated on --calib), keeps it apart from auto's, refuses it where it cannot
apply; and a CPU where int8 beats auto's fp32 (VNNI, no BF16) says so."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytest.importorskip("openvino")

from rtseg.backends.openvino_backend import openvino_machine  # noqa: E402
from rtseg.config import BenchConfig, CompileConfig, RunConfig  # noqa: E402
from rtseg.device import INT8_HINT, int8_beats_auto  # noqa: E402
from rtseg.errors import RtsegError  # noqa: E402
from rtseg.export import compile_checkpoint  # noqa: E402
from rtseg.export.cache import cached_engine, resolve_model  # noqa: E402
from rtseg.manifest import read_manifest  # noqa: E402

SIZE = (96, 160)
BEST = "bf16" if openvino_machine()["bf16"] else "fp32"


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """8 frames of a generated drive as PNG files, like a camera's (the demo's world)."""
    from rtseg.data.synthetic import SceneStream

    folder = tmp_path_factory.mktemp("frames")
    drive = SceneStream(seed=5, height=180, width=320)
    for i in range(8):
        image, _ = drive.next()
        assert cv2.imwrite(str(folder / f"f{i}.png"), image[:, :, ::-1])
    return folder


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory, frames) -> Path:
    """The demo's int8 engine, built through the cache (as `--precision int8` does)."""
    cache = tmp_path_factory.mktemp("cache")
    return cached_engine("demo", "openvino", "cpu", cache, input_size=SIZE,
                         calib=str(frames), precision="int8")


def test_the_cache_builds_the_precision_asked_for_once_and_apart(int8_cache, frames):
    manifest = read_manifest(int8_cache)
    assert manifest.precision == "int8" and manifest.parity["passed"]
    assert manifest.versions["nncf"]
    key = json.loads(int8_cache.with_name(int8_cache.stem + ".key.json").read_text())
    assert key["precision"] == "int8" and key["calib"] == str(frames)
    stamp = int8_cache.stat().st_mtime_ns
    again = cached_engine("demo", "openvino", "cpu", int8_cache.parent, input_size=SIZE,
                          calib=str(frames), precision="int8")
    assert again == int8_cache and int8_cache.stat().st_mtime_ns == stamp
    auto = cached_engine("demo", "openvino", "cpu", int8_cache.parent, input_size=SIZE,
                         calib=str(frames))
    assert auto != int8_cache and read_manifest(auto).precision == BEST
    fp32 = cached_engine("demo", "openvino", "cpu", int8_cache.parent, input_size=SIZE,
                         calib=str(frames), precision="fp32")
    assert read_manifest(fp32).precision == "fp32"
    assert (fp32 == auto) == (BEST == "fp32")  # auto is fp32 on a CPU without BF16


def test_the_node_runs_the_int8_engine_it_was_asked_for(int8_cache, frames):
    from conftest import running_node, until_stopping  # tests/ is on sys.path

    cfg = RunConfig(source=str(frames), model="demo", name="cam", engine="openvino",
                    precision="int8", calib=str(frames), engine_cache=str(int8_cache.parent),
                    device="cpu", max_frames=3)
    with running_node(cfg, ["cam/classes"]) as node:
        masks = until_stopping(node.sub)
    assert len(masks) == 3 and all(data.shape == (180, 320) for _, data in masks)
    assert node.report.published == 3
    built = [read_manifest(p).precision for p in int8_cache.parent.glob("*-openvino-*.json")
             if not p.name.endswith(".key.json")]
    assert "int8" in built


def test_bench_runs_the_precision_named_on_its_command_line(frames, tmp_path, cli_env):
    proc = subprocess.run(
        [sys.executable, "-m", "rtseg", "bench", "--model", "demo", "--engine", "openvino",
         "--precision", "int8", "--calib", str(frames), "--height", str(SIZE[0]),
         "--width", str(SIZE[1]), "--seconds", "1", "--warmup", "0.2", "--rounds", "1",
         "--no-baseline", "--device", "cpu", "--engine-cache", str(tmp_path), "--json"],
        env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["model"].endswith("/openvino-int8") and result["engine"]["fps"] > 0


def test_precision_is_refused_where_it_cannot_apply(int8_cache, frames):
    with pytest.raises(RtsegError, match="--engine openvino"):
        RunConfig(source="demo", engine="torch", precision="int8", calib=str(frames))
    with pytest.raises(RtsegError, match="--precision int8 needs --calib"):
        BenchConfig(precision="int8")
    with pytest.raises(RtsegError, match="unknown --precision 'fp8'"):
        BenchConfig(precision="fp8")
    with pytest.raises(RtsegError, match="is an engine already"):
        resolve_model(str(int8_cache), "openvino", "cpu", int8_cache.parent, precision="fp32")


def test_a_run_with_precision_and_no_engine_is_one_line(cli_env, frames):
    proc = subprocess.run([sys.executable, "-m", "rtseg", "run", "--source", "demo",
                           "--precision", "int8", "--calib", str(frames)],
                          env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "--engine openvino" in proc.stderr


def test_auto_on_a_cpu_where_int8_is_faster_says_so(tmp_path, caplog):
    """The hint is logged where the CPU has VNNI but no BF16, and only there."""
    cfg = CompileConfig(checkpoint="demo", format="openvino", height=SIZE[0], width=SIZE[1],
                        out=str(tmp_path), device="cpu", frames=2)
    with caplog.at_level(logging.INFO, logger="rtseg"):
        compile_checkpoint(cfg)
    assert (INT8_HINT in caplog.text) == int8_beats_auto()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rtseg"):
        compile_checkpoint(CompileConfig(**{**cfg.__dict__, "precision": "fp32",
                                            "name": "named"}))
    assert INT8_HINT not in caplog.text  # fp32 asked for by name: no advice


@pytest.mark.slow
def test_the_python_api_runs_the_precision_it_was_asked_for(int8_cache, frames):
    """Segmenter(precision=...) builds (or finds) the engine in the same cache as `rtseg
    run`, at the checkpoint's input size."""
    from rtseg import Segmenter

    frame = cv2.imread(str(frames / "f0.png"))
    with Segmenter("demo", engine="openvino", device="cpu", precision="int8",
                   calib=str(frames), engine_cache=str(int8_cache.parent),
                   warmup=False) as int8:
        assert Path(int8.model).parent == int8_cache.parent
        assert read_manifest(int8.model).precision == "int8"
        assert int8.spec.name.endswith("/openvino-int8")
        assert int8(frame).classes.shape == frame.shape[:2]
    with pytest.raises(RtsegError, match="--engine openvino"):
        Segmenter("demo", device="cpu", precision="int8", calib=str(frames))
    with pytest.raises(RtsegError, match="--precision int8 needs --calib"):
        Segmenter("demo", engine="openvino", device="cpu", precision="int8")
