"""`rtseg run --metrics-port`: a real node process scraped over HTTP as Prometheus would."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

WAIT_S = 120.0
DASHBOARD = Path(__file__).resolve().parents[1] / "launch" / "grafana" / "rtseg.json"


def dashboard_metrics(prefix: str) -> set[str]:
    """The sample names (rtseg_..._total, ..._bucket) the Grafana dashboard's queries use."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel.get("targets", ())]
    assert exprs
    return {name for expr in exprs for name in re.findall(r"rtseg_[a-z0-9_]+", expr)
            if name.startswith(prefix)}


class Node:
    """`rtseg run ARGS` in a subprocess, its stderr lines collected."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "rtseg", "run", *args],
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(x) for x in self.proc.stderr],
                         daemon=True).start()

    def wait_for(self, pattern: str) -> re.Match:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.lines.get(timeout=1))
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.seen)
                continue
            if match := re.search(pattern, self.seen[-1]):
                return match
        raise AssertionError(f"no {pattern!r} within {WAIT_S} s:\n" + "".join(self.seen))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def scrape(url: str) -> dict:
    """{(sample name, frozenset of labels): value} of one GET of `url`."""
    reply = httpx.get(url, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_a_running_node_is_scraped(tiny_checkpoint):
    node = Node("--source", "demo", "--model", str(tiny_checkpoint), "--device", "cpu",
                "--bind", "tcp://127.0.0.1:*", "--status-every", "0", "--metrics-port", "0")
    try:
        url = node.wait_for(r"metrics at (http://127\.0\.0\.1:\d+/metrics)").group(1)
        deadline = time.monotonic() + WAIT_S
        while (value(samples := scrape(url), "rtseg_node_frames_published_total",
                     source="demo") or 0) < 5:
            assert time.monotonic() < deadline, samples
            time.sleep(0.1)
        other = httpx.get(url.replace("/metrics", "/nothing"), timeout=30)
        assert node.stop() == 0
    finally:
        node.stop()
    assert other.status_code == 404 and "/metrics" in other.text
    assert value(samples, "rtseg_node_model_loaded") == 1
    info = [dict(k[1]) for k in samples if k[0] == "rtseg_node_info"]
    assert len(info) == 1 and info[0]["model"] and info[0]["endpoint"].startswith("tcp://")
    assert value(samples, "rtseg_node_source_state", source="demo", state="ok") == 1
    assert value(samples, "rtseg_node_source_state", source="demo", state="ended") == 0
    assert value(samples, "rtseg_node_frames_dropped_total", source="demo") >= 0
    assert value(samples, "rtseg_node_last_seq", source="demo") >= 4
    p50 = value(samples, "rtseg_node_latency_seconds", quantile="0.5")
    p99 = value(samples, "rtseg_node_latency_seconds", quantile="0.99")
    assert 0 < p50 <= p99 < 60, (p50, p99)
    assert value(samples, "rtseg_node_stage_seconds", stage="infer", quantile="0.5") > 0
    assert value(samples, "rtseg_node_uptime_seconds") > 0
    used = dashboard_metrics("rtseg_node_")  # launch/grafana/rtseg.json asks for what is there
    assert used and used <= {name for name, _ in samples}, used - {n for n, _ in samples}
    with socket.socket() as probe:  # the server went with the node
        assert probe.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))) != 0


def test_a_busy_metrics_port_fails_before_the_model_loads(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "rtseg", "run", "--source", "demo",
                               "--bind", f"ipc://{tmp_path}/n.sock", "--metrics-port",
                               str(port)], capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"rtseg: error: port {port} is in use on 127.0.0.1: stop the program "
                    "holding it or pick another with --metrics-port"), done.stderr
    assert "lraspp" not in done.stderr  # the model never loaded


def test_a_remote_metrics_bind_needs_allow_remote(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rtseg", "run", "--bind",
                           f"ipc://{tmp_path}/n.sock", "--metrics-port", "0",
                           "--metrics-bind", "0.0.0.0"],
                          capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 1 and "--metrics-bind 0.0.0.0 is not a loopback address" in (
        done.stderr), done.stderr
