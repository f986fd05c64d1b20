"""The console script as a user runs it: help, errors, signals, and a PROTOCOL.md-only reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import zmq
from protocol_reader import check_stream, read_frame  # noqa: I001  (tests/ is on sys.path)

from rtseg.cli import main

RTSEG = [sys.executable, "-m", "rtseg"]


def start_node(*args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([*RTSEG, "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def subscriber(endpoint: str, topics: list[str], timeout_ms: int = 30000) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode() + b"\x00")
    sock.connect(endpoint)
    return sock


def test_every_command_and_option_has_help():
    assert main.help
    for name, command in main.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"rtseg {name} {param.opts[0]} has no help"
    done = subprocess.run([*RTSEG, "run", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    for flag in ("--source", "--model", "--bind", "--name", "--max-frames", "--fps", "--pace",
                 "--loop", "--encoding"):
        assert flag in done.stdout


def test_tab_completion_of_commands_and_options():
    """click's completion, as `eval "$(_RTSEG_COMPLETE=bash_source rtseg)"` sets it up."""
    script = str(Path(sys.executable).with_name("rtseg"))

    def complete(words: str) -> str:
        env = {**os.environ, "_RTSEG_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        done = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert complete("rtseg ru") == "plain,run"
    assert complete("rtseg run --cro") == "plain,--crop"
    setup = subprocess.run([script], env={**os.environ, "_RTSEG_COMPLETE": "bash_source"},
                           capture_output=True, text=True, timeout=60)
    assert "complete -o nosort -F _rtseg_completion rtseg" in setup.stdout, setup.stdout


def test_help_does_not_import_torch():
    code = "import sys; from rtseg import cli; print('torch' in sys.modules, 'cv2' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_demo_node_passes_an_independent_protocol_reader(endpoint):
    topics = ["demo/drivable", "demo/classes"]
    sock = subscriber(endpoint, topics)
    node = start_node("--bind", endpoint, "--max-frames", "25", "--device", "cpu")
    try:
        frames = [sock.recv() for _ in range(20)]
    finally:
        sock.close()
        out, err = node.communicate(timeout=120)
    assert node.returncode == 0, err
    counts = check_stream(frames, topics)
    assert counts["demo/drivable"] >= 5 and counts["demo/classes"] >= 5
    for frame in frames:
        topic, payload, mask = read_frame(frame)
        assert payload["v"] == 1 and payload["frame_id"] == "demo"
        assert (payload["height"], payload["width"]) == (360, 640) == mask.shape
    assert "published 25 frames" in err


@pytest.mark.slow
def test_echo_prints_masks_from_a_running_node(endpoint, tiny_checkpoint):
    node = start_node("--bind", endpoint, "--model", str(tiny_checkpoint), "--device", "cpu",
                      "--demo-size", "96x128")
    try:
        done = subprocess.run([*RTSEG, "echo", endpoint, "demo/drivable", "--count", "3",
                               "--timeout", "60"], capture_output=True, text=True, timeout=120)
        listed = subprocess.run([*RTSEG, "echo", endpoint, "--timeout", "4"],  # no topics
                                capture_output=True, text=True, timeout=120)
        reader_gone = subprocess.Popen([*RTSEG, "echo", endpoint, "demo/drivable", "--timeout",
                                        "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert reader_gone.stdout.readline().startswith(b"demo/drivable seq=")
        reader_gone.stdout.close()  # like `| head -n 1`
        _, gone_err = reader_gone.communicate(timeout=60)
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=60)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stderr
    assert len(lines) == 3
    assert all(line.startswith("demo/drivable seq=") and "128x96" in line for line in lines)
    assert reader_gone.returncode == 0 and b"Traceback" not in gone_err, gone_err
    assert listed.returncode == 0, listed.stderr  # the topic list: one line each, sorted
    rows = [line.split() for line in listed.stdout.strip().splitlines()]
    assert [row[:4] for row in rows[:2]] == [["demo/classes", "classes", "128x96", "mono8"],
                                             ["demo/drivable", "drivable", "128x96", "mono8"]]
    assert rows[2][:4] == ["demo/status", "status", "node=demo", "sources=demo"]
    assert len(rows) == 3 and all(row[-1] in ("Hz", "s") for row in rows)


def test_a_node_that_ends_sends_its_last_masks_and_status_before_it_exits(
        tmp_path, endpoint, tiny_checkpoint):
    """The process exits once its queue has gone out (for a few seconds at most): a consumer
    gets the last frame's masks and the ``stopping`` status, which used to be dropped."""
    from conftest import until_stopping

    from rtseg.client import MaskSubscriber
    from tests.test_node import write_video

    video = tmp_path / "clip.avi"
    write_video(video, 12)
    topics = ["clip/drivable", "clip/classes", "clip/status"]
    with MaskSubscriber(endpoint, topics, timeout_ms=60000) as sub:  # before the node binds
        node = start_node("--source", str(video), "--model", str(tiny_checkpoint), "--bind",
                          endpoint, "--device", "cpu", "--hwm", "1000")
        try:
            messages = until_stopping(sub)
        finally:
            _, err = node.communicate(timeout=120)
    assert node.returncode == 0, err
    masks = [(header.topic, header.seq) for header, _ in messages]
    assert masks[-2:] == [("clip/drivable", 11), ("clip/classes", 11)], masks[-4:]


def stop_and_wait(proc: subprocess.Popen, sig: int) -> tuple[float, str]:
    """Send `sig`; (seconds until the process exited, its stderr)."""
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return time.monotonic() - sent, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_node_cleanly(endpoint, tiny_checkpoint, sig):
    sock = subscriber(endpoint, ["demo/drivable"])
    node = start_node("--bind", endpoint, "--model", str(tiny_checkpoint), "--device", "cpu",
                      "--demo-size", "64x96")
    try:
        sock.recv()  # running
    finally:
        sock.close()
    seconds, err = stop_and_wait(node, sig)
    assert node.returncode == 0, err
    assert seconds < 5, f"{seconds:.1f} s to exit"  # measured: benchmarks/signal_exit.py
    summary = [line for line in err.splitlines() if "published" in line]
    assert len(summary) == 1 and f"stopped by {sig.name}" in summary[0], err
    assert not Path(endpoint[len("ipc://"):]).exists(), "the socket was not closed"


@pytest.mark.parametrize("delay_s", [0.5, 1.5])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_during_start_up_exit_0_with_one_line(endpoint, sig, delay_s):
    """Whatever the node is doing at the moment (importing torch, loading the model,
    opening the source, its first frames): exit 0 soon, one summary line, socket closed."""
    node = start_node("--bind", endpoint, "--device", "cpu", "--demo-size", "64x96")
    time.sleep(delay_s)  # the moment of the signal is the test's parameter, not a wait
    seconds, err = stop_and_wait(node, sig)
    assert node.returncode == 0, err
    assert seconds < 5, f"{seconds:.1f} s to exit"
    assert "Traceback" not in err and "Aborted" not in err, err
    summaries = [line for line in err.splitlines()
                 if f"stopped by {sig.name}" in line or "published" in line]
    assert len(summaries) == 1, err
    assert not Path(endpoint[len("ipc://"):]).exists(), "the socket was not closed"


def test_echo_stops_on_sigterm_with_a_summary(endpoint):
    echo = subprocess.Popen([*RTSEG, "echo", endpoint, "demo/drivable"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # echo is waiting for masks that never come
    seconds, err = stop_and_wait(echo, signal.SIGTERM)
    assert echo.returncode == 0, err
    assert "rtseg echo: stopped by SIGTERM" in err  # after 0 messages, or in start-up
    assert seconds < 5


def run_fails(*args: str) -> str:
    done = subprocess.run([*RTSEG, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("rtseg: error:")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return errors[0]


def test_missing_file_is_one_line(tmp_path, endpoint):
    line = run_fails("run", "--source", str(tmp_path / "nope.mp4"), "--bind", endpoint)
    assert "nope.mp4" in line


def test_missing_camera_is_one_line(endpoint):
    line = run_fails("run", "--source", "camera37", "--bind", endpoint)
    assert "camera 37" in line


def test_busy_port_is_one_line():
    holder = zmq.Context.instance().socket(zmq.PUB)
    holder.setsockopt(zmq.LINGER, 0)
    holder.bind("tcp://127.0.0.1:*")  # the port stays held while the node tries it
    endpoint = holder.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        line = run_fails("run", "--bind", endpoint)
    finally:
        holder.close()
    assert "in use" in line and endpoint.rsplit(":", 1)[1] in line


def test_remote_bind_needs_a_flag():
    line = run_fails("run", "--bind", "tcp://0.0.0.0:5555")
    assert "--allow-remote" in line


def test_broken_checkpoint_is_one_line(tmp_path, endpoint):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"garbage" * 10)
    line = run_fails("run", "--model", str(bad), "--bind", endpoint)
    assert "broken.pt" in line
    line = run_fails("eval", str(bad))
    assert "broken.pt" in line


def test_unknown_recipe_is_one_line(tmp_path):
    line = run_fails("train", str(tmp_path / "none.toml"))
    assert "none.toml" in line


def test_models_lists_every_model():
    done = subprocess.run([*RTSEG, "models"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for name in ("lraspp_mobilenet_v3", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3", "unet",
                 "deeplabv3plus"):
        assert name in done.stdout


WAIT_POLICY = """
import os, sys
from rtseg.cli import main
loaded = 'torch' in sys.modules
sys.argv = ['rtseg', *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(loaded, 'torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))
"""
WAIT_CASES = {
    "run on the demo": (["run", "--model", "missing.pt"], {}, "False True PASSIVE"),
    "run on a camera": (["run", "--source", "camera9", "--model", "missing.pt"], {},
                        "False True PASSIVE"),
    "run, user's policy": (["run", "--model", "missing.pt"], {"OMP_WAIT_POLICY": "ACTIVE"},
                           "False True ACTIVE"),
    "run, user's spin count": (["run", "--model", "missing.pt"], {"GOMP_SPINCOUNT": "1000"},
                               "False True None"),
    "run on a file": (["run", "--source", "missing.mp4"], {}, "False True None"),
    "bench from memory": (["bench", "--model", "missing.pt"], {}, "False True None"),
    "bench on the demo": (["bench", "--model", "missing.pt", "--source", "demo"], {},
                          "False True PASSIVE"),
    "train": (["train", "missing.toml"], {}, "False True None"),
}


@pytest.mark.parametrize("case", WAIT_CASES)
def test_the_node_makes_torchs_idle_threads_sleep(tmp_path, case):
    """`rtseg run` and `rtseg bench` on a live source (demo, camera, stream) set
    OMP_WAIT_POLICY=PASSIVE before torch loads (libgomp reads it then), unless the user set
    a policy or spin count; on files, memory frames, and `rtseg train`, nothing is set. The
    command then fails on its missing file as usual."""
    args, env, expected = WAIT_CASES[case]
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", WAIT_POLICY, *args], cwd=tmp_path,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == expected, done.stderr
    assert "rtseg: error:" in done.stderr and ("missing" in done.stderr
                                               or "camera 9" in done.stderr), done.stderr
