"""`rtseg doctor`: each line checked against what this machine really has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import pytest


def doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtseg", "doctor", *args], text=True,
                          capture_output=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def report() -> dict:
    done = doctor("--json")
    assert done.returncode == 0, done.stderr
    return {c["area"]: c for c in json.loads(done.stdout.splitlines()[-1])["checks"]}


def test_every_check_has_a_status_and_a_hint_unless_ok(report):
    assert {"python", "torch", "cpu", "engine onnx", "engine openvino", "engine aoti",
            "engine tensorrt", "engine auto", "opencv", "cameras", "zeromq", "msgpack",
            "record", "serve"} <= set(report)
    for check in report.values():
        assert check["status"] in ("ok", "note", "warn", "error"), check
        assert check["status"] == "ok" or check["hint"], check


def test_versions_and_devices_are_the_installed_ones(report):
    import cv2
    import torch
    import zmq

    assert f"torch {torch.__version__}" in report["torch"]["detail"]
    assert ("no GPU is visible" in report["torch"]["detail"]
            or "CPU-only" in report["torch"]["detail"]) != torch.cuda.is_available()
    assert f"onnxruntime {metadata.version('onnxruntime')}" in report["engine onnx"]["detail"]
    assert f"openvino {metadata.version('openvino')}" in report["engine openvino"]["detail"]
    assert f"OpenCV {cv2.__version__}" in report["opencv"]["detail"]
    assert "FFMPEG" in report["opencv"]["detail"].split("cameras")[0]  # the wheel bundles it
    zeromq = report["zeromq"]["detail"]
    assert f"libzmq {zmq.zmq_version()}" in zeromq
    assert f"CURVE {'yes' if zmq.has('curve') else 'no'}" in zeromq


def test_optional_engines_and_the_auto_pick_match_this_machine(report):
    for module, area in (("tensorrt", "engine tensorrt"),
                         ("torch_tensorrt", "engine torch-tensorrt")):
        absent = find_spec(module) is None
        assert (report[area]["status"] == "note") == absent, report[area]
        assert not absent or ".[tensorrt]" in report[area]["hint"]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    bf16 = "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()
    assert f"cpu: openvino {'bf16' if bf16 else 'fp32'}" in report["engine auto"]["detail"]
    vnni = bool({"avx512_vnni", "avx_vnni"} & set(flags.split()))
    cpu = report["cpu"]  # where int8 beats auto's fp32 (VNNI, no BF16), doctor says how
    assert (cpu["status"] == "note") == (vnni and not bf16), cpu
    assert (cpu["status"] == "ok") or "--precision int8 --calib" in cpu["hint"]


def test_cameras_are_the_video4linux_devices(report):
    devices = sorted(p.name for p in Path("/sys/class/video4linux").glob("video*"))
    cameras = report["cameras"]
    assert (cameras["status"] == "ok") == bool(devices), cameras
    for name in devices:
        assert f"camera{name[5:]} = /dev/{name}" in cameras["detail"]


def test_text_report_counts_and_a_broken_package_is_an_error(tmp_path):
    done = doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"\d+ checks: 0 errors, \d+ warnings", done.stdout.splitlines()[-1])
    # a half-installed package as users meet them: present, but its import raises
    for name, message in (("msgpack", "msgpack is broken"),
                          ("tensorrt", "libnvinfer.so.10: cannot open shared object file")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    broken = doctor(env=env)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    lines = broken.stdout.splitlines()
    assert any(ln.startswith("error") and "msgpack is broken" in ln for ln in lines), lines
    assert any(ln.startswith("warn") and "engine tensorrt" in ln and "libnvinfer" in ln
               for ln in lines), lines
    assert lines[-1].startswith(f"{len([ln for ln in lines if not ln.startswith(' ')]) - 1} "
                                "checks: 1 errors")


def test_ffmpeg_options_in_the_environment_are_named(report):
    assert ("ffmpeg options" in report) == ("OPENCV_FFMPEG_CAPTURE_OPTIONS" in os.environ)
    done = doctor(env={**os.environ, "OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;udp"})
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(ln for ln in done.stdout.splitlines() if "ffmpeg options" in ln)
    assert line.startswith("note") and "rtsp_transport;udp" in line, line
