"""`rtseg bench` end to end on this machine (small sizes: the figures live in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rtseg.bench import targets
from rtseg.config import BenchConfig
from rtseg.errors import RtsegError


def run_cli(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "rtseg", "bench", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bench_json(tiny_checkpoint, tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("engines")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = run_cli(["--model", str(tiny_checkpoint), "--height", "64", "--width", "96",
                    "--seconds", "2", "--warmup", "1", "--device", "cpu", "--engine-cache",
                    str(cache), "--data", "synthetic", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bench_prints_a_table_and_json_on_the_last_line(bench_json):
    lines = bench_json.strip().splitlines()
    result = json.loads(lines[-1])
    assert any(line.startswith("engine") for line in lines[:-1])
    for phase in ("engine", "pipeline", "baseline"):
        assert result[phase]["fps"] > 0
        assert 0 < result[phase]["p50_ms"] <= result[phase]["p99_ms"]
    assert result["engine_file"].endswith(".json")  # a compiled engine, not the checkpoint
    if "openvino" in result["model"]:  # auto on the CPU: fed as the node feeds it
        assert (result["engine"]["input"], result["engine"]["output"]) == ("frames", "classes")
    assert result["input_size"] == [64, 96]
    stages = result["pipeline"]["stages_ms"]
    assert {"capture", "pre", "infer", "post", "publish"} <= set(stages)
    assert result["pipeline"]["frames"] > 0
    rounds = result["pipeline"]["rounds"]  # each round's own figures, to spot a bad one
    assert len(rounds) == 3 and sum(r["frames"] for r in rounds) == result["pipeline"]["frames"]
    ratios = result["ratios"]
    assert ratios["engine_vs_baseline"] == pytest.approx(
        result["engine"]["fps"] / result["baseline"]["fps"])
    assert set(result["targets"]) == {"engine_vs_baseline", "pipeline_vs_engine"}
    accuracy = result["accuracy"]  # --data: the engine scored beside its speed
    assert accuracy["images"] > 0 and 0.0 <= accuracy["miou"] <= 1.0
    assert "mIoU" in lines[-2]


def test_bench_pipeline_reaches_a_real_subscriber(bench_json):
    result = json.loads(bench_json.strip().splitlines()[-1])
    rates = result["pipeline"]["consumer_rates_hz"]
    assert rates.get("cam0/drivable", 0) > 0 and rates.get("cam0/classes", 0) > 0


def test_targets_compare_in_the_right_direction():
    result = {"ratios": {"pipeline_vs_engine": 0.95, "engine_vs_baseline": 2.0},
              "engine": {"fps": 10.0}, "pipeline": {"p50_ms": 1.0, "p99_ms": 9.0}}
    import torch

    got = targets(result, torch.device("cpu"))
    assert got["pipeline_vs_engine"]["met"] and not got["engine_vs_baseline"]["met"]
    gpu = targets(result, torch.device("cuda"))
    assert gpu["pipeline_p50_ms"]["met"] and not gpu["pipeline_p99_ms"]["met"]
    assert not gpu["engine_fps"]["met"]


def test_bench_config_rejects_bad_values():
    with pytest.raises(RtsegError, match="--seconds"):
        BenchConfig(seconds=0)
    with pytest.raises(RtsegError, match="--engine"):
        BenchConfig(engine="tflite")


def test_bench_on_a_missing_model_is_one_clear_line(tmp_path, cli_env):
    proc = run_cli(["--model", str(tmp_path / "nope.pt"), "--seconds", "1",
                    "--engine", "torch"], cli_env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("rtseg: error:") and "nope.pt" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_takes_an_engine_manifest_and_its_own_input_size(bench_json, tiny_checkpoint,
                                                               cli_env):
    engine = json.loads(bench_json.strip().splitlines()[-1])["engine_file"]
    common = ["--model", engine, "--seconds", "1", "--warmup", "0.3", "--rounds", "1",
              "--device", "cpu", "--json"]
    with_baseline = run_cli([*common, "--checkpoint", str(tiny_checkpoint)], cli_env)
    assert with_baseline.returncode == 0, with_baseline.stderr
    result = json.loads(with_baseline.stdout.strip().splitlines()[-1])
    assert result["input_size"] == [64, 96]  # the engine's, not the 512x1024 default
    assert result["baseline"]["fps"] > 0
    alone = run_cli(common, cli_env)
    assert alone.returncode == 0, alone.stderr
    assert "baseline" not in json.loads(alone.stdout.strip().splitlines()[-1])
    assert "no naive-loop baseline without --checkpoint" in alone.stderr


def test_record_bench_writes_where_out_says_and_passes_the_rest_to_the_bench(
        tiny_checkpoint, tmp_path, cli_env):
    """benchmarks/record_bench.py NAME --out DIR -- [bench options]: its own options before
    `--`, the bench's after it (it once sent --out on to the bench, which refused it)."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "record_bench.py"
    proc = subprocess.run(
        [sys.executable, str(script), "tiny-cpu", "--out", str(tmp_path), "--",
         "--model", str(tiny_checkpoint), "--engine", "torch", "--device", "cpu",
         "--height", "64", "--width", "96", "--seconds", "1", "--warmup", "0.5",
         "--no-baseline"],
        env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "tiny-cpu.json").read_text())
    assert result["recorded"]["command"].startswith("rtseg bench --model ")
    assert "--out" not in result["recorded"]["command"]
    assert result["input_size"] == [64, 96] and result["pipeline"]["frames"] > 0
    assert result["pipeline"]["cuda_graph"] is None  # the CPU pipeline has none
    table = (tmp_path / "tiny-cpu.md").read_text()
    assert "rtseg bench:" in table and "pipeline" in table


def test_frame_input_compares_host_and_engine_normalisation(tiny_checkpoint, tmp_path,
                                                            cli_env):
    """benchmarks/frame_input.py: both ways of feeding an OpenVINO engine, engine alone and
    node, in one run, and their class maps on a folder of real image files."""
    pytest.importorskip("openvino")
    from pathlib import Path

    import cv2

    from rtseg.export.parity import parity_frames

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(parity_frames(3)):
        assert cv2.imwrite(str(frames / f"{i}.png"), frame)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "frame_input.py"
    proc = subprocess.run(
        [sys.executable, str(script), "tiny", "--out", str(tmp_path), "--model",
         str(tiny_checkpoint), "--height", "64", "--width", "96", "--frame-size", "120x200",
         "--seconds", "1", "--rounds", "1", "--warmup", "0.5", "--frames", str(frames)],
        env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "tiny.json").read_text())
    assert result["frame_size"] == [120, 200] and result["input_size"] == [64, 96]
    for side in ("host", "engine"):
        assert result[f"engine_{side}"]["fps"] > 0 and result[f"node_{side}"]["frames"] > 0
    assert result["agreement"]["images"] == 3 and result["agreement"]["equal_min"] >= 0.99
    assert "node FPS, engine / host" in (tmp_path / "tiny.md").read_text()


def test_engine_resize_compares_the_host_and_the_engine_shrinking_frames(compiled_engine,
                                                                        tmp_path, cli_env):
    """benchmarks/engine_resize.py: both ways of shrinking a larger frame for an OpenVINO
    engine take turns, timed, and their class maps agree."""
    pytest.importorskip("openvino")
    from pathlib import Path

    engine = compiled_engine("openvino", precision="fp32").path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "engine_resize.py"
    proc = subprocess.run(
        [sys.executable, str(script), "tiny", "--out", str(tmp_path), "--engine", str(engine),
         "--frame-size", "120x200", "--rounds", "2", "--calls", "3"],
        env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "tiny.json").read_text())
    assert result["frame_size"] == [120, 200] and result["frames"] == "demo"
    for way in ("host", "engine"):
        assert len(result["wall_ms"][way]) == 2 and min(result["cpu_ms"][way]) >= 0
    # two bilinear resizes of the same frame, rounded differently: most classes equal
    assert result["equal_mean"] >= 0.9
    assert "| engine |" in (tmp_path / "tiny.md").read_text()
