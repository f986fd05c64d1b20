"""Soak: the node on the live demo for a long time, with a subscriber; RSS and FDs sampled.

    python benchmarks/soak.py --minutes 30 [--every 10] [--out benchmarks/results]
        [-- extra rtseg run arguments]

Starts `rtseg run --source demo` (30 FPS live source, the bundled model) in its own
process on an ipc:// endpoint, subscribes to demo/drivable, demo/classes and demo/status
here, and every `--every` seconds samples the node's resident set size (VmRSS in
/proc/PID/status) and its open file descriptors (/proc/PID/fd). Targets: RSS growth below
5 % from the first minute to the end, FD count flat. Writes results/cpu-soak.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soak(minutes: float, every_s: float, extra: list[str]) -> dict:
    from rtseg.client import MaskSubscriber
    from rtseg.protocol import NodeStatus

    folder = tempfile.mkdtemp(prefix="rtseg-soak-")
    endpoint = f"ipc://{folder}/node.sock"
    cmd = [sys.executable, "-m", "rtseg", "run", "--source", "demo", "--bind", endpoint, *extra]
    node = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    samples, counts, last_status = [], {"masks": 0, "status": 0}, None
    started = time.monotonic()
    try:
        with MaskSubscriber(endpoint, ["demo/drivable", "demo/classes", "demo/status"],
                            timeout_ms=30000) as sub:
            next_sample = time.monotonic()
            while time.monotonic() - started < minutes * 60:
                message = sub.recv_message()
                if isinstance(message, NodeStatus):
                    counts["status"] += 1
                    last_status = message.source("demo")
                else:
                    counts["masks"] += 1
                if time.monotonic() >= next_sample:
                    samples.append({"t_s": round(time.monotonic() - started, 1),
                                    "rss_mb": round(rss_kb(node.pid) / 1024, 1),
                                    "fds": fds(node.pid), "masks": counts["masks"]})
                    next_sample += every_s
    finally:
        node.send_signal(signal.SIGTERM)
        _, err = node.communicate(timeout=60)
    shown = ["ipc://TMPDIR/node.sock" if part == endpoint else part for part in cmd[3:]]
    return {"command": " ".join(["rtseg", *shown]), "minutes": minutes, "samples": samples,
            "received": counts, "last_status": last_status and last_status.__dict__,
            "node_exit": node.returncode, "node_summary": err.strip().splitlines()[-1:]}


def summarise(result: dict) -> dict:
    after_first_minute = [s for s in result["samples"] if s["t_s"] >= 60]
    base, end = after_first_minute[0], result["samples"][-1]
    growth = 100.0 * (end["rss_mb"] - base["rss_mb"]) / base["rss_mb"]
    fd_counts = [s["fds"] for s in after_first_minute]
    return {"rss_mb_at_1min": base["rss_mb"], "rss_mb_end": end["rss_mb"],
            "rss_mb_max": max(s["rss_mb"] for s in result["samples"]),
            "rss_growth_pct": round(growth, 2), "fds_min": min(fd_counts),
            "fds_max": max(fd_counts),
            "masks_per_s": round(end["masks"] / 2 / max(end["t_s"], 1), 1),
            "rss_target_met": growth < 5.0, "fds_flat": min(fd_counts) == max(fd_counts)}


def write(result: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result = {"script": command, "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", **result}
    (out / "cpu-soak.json").write_text(json.dumps(result, indent=2) + "\n")
    s = result["summary"]
    lines = ["# Soak: node on the live demo (CPU)", "", f"`{command}` ({result['date']}); the "
             f"node: `{result['command']}`", "",
             "| minutes | masks/s (per topic) | RSS at 1 min | RSS at end | growth (target < 5 %)"
             " | FDs after 1 min (target flat) |", "|---|---|---|---|---|---|",
             f"| {result['minutes']:g} | {s['masks_per_s']} | {s['rss_mb_at_1min']} MB | "
             f"{s['rss_mb_end']} MB | {s['rss_growth_pct']} % "
             f"({'met' if s['rss_target_met'] else 'MISSED'}) | {s['fds_min']}..{s['fds_max']} "
             f"({'flat' if s['fds_flat'] else 'NOT flat'}) |", "",
             f"Node exit status {result['node_exit']}: {' '.join(result['node_summary'])}",
             "", "Samples every 10 s are in cpu-soak.json."]
    (out / "cpu-soak.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    result = soak(args.minutes, args.every, extra)
    result["summary"] = summarise(result)
    write(result, Path(args.out), "python benchmarks/soak.py " + " ".join(sys.argv[1:]))
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
