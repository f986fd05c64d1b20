"""How torch's idle OpenMP threads wait, and what it does to the node on a CPU, in one run.

    python benchmarks/omp_wait.py NAME [--seconds 15] [--rounds 2] [--bench-seconds 8]
    python benchmarks/omp_wait.py NAME --serve IMAGE [--model M] [--requests 12]

Three settings, each a fresh process (libgomp reads them once, when torch loads):
- `spin`: libgomp's own default, an idle thread spins ~300,000 turns before it sleeps
  (`GOMP_SPINCOUNT=300000`, what rtseg ran with before it set a policy);
- `passive`: `OMP_WAIT_POLICY=PASSIVE`, what `rtseg run` and `rtseg bench` now set on a
  live source unless the user set either knob (rtseg.device.yield_idle_cpu_threads);
- `spin 1k`: `GOMP_SPINCOUNT=1000`, a short spin (does a little spinning keep the
  engine's speed without starving the other threads?);
- `one thread`: `OMP_NUM_THREADS=1` (spinning as libgomp's default), an engine that leaves
  the other cores to the node.
Three cases, the bundled demo checkpoint run eagerly by torch: the node on the demo source
(a live 30 FPS generator: a rendering thread beside the engine), the node on two demo
sources, and `rtseg bench` at 512x1024 (frames from memory: engine alone and pipeline).
A node runs `--seconds` then gets SIGINT; its summary line gives published FPS and
latency. Rounds alternate the settings, so drift of the machine touches each alike.
With `--serve IMAGE`, instead: `rtseg serve --model M` (spin and passive only) answering
1, 2 and 4 clients that each POST the JPEG of IMAGE `--requests / clients` times: requests
per second and latency, the HTTP server's decoding and encoding beside the engine.
Writes results/NAME.json and results/NAME.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from record_bench import save_result  # noqa: I001 (benchmarks/ is sys.path[0])

from rtseg.device import OMP_WAIT_KNOBS

SETTINGS = {"spin": {"GOMP_SPINCOUNT": "300000"},
            "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
            "spin 1k": {"GOMP_SPINCOUNT": "1000"},
            "one thread": {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": "1"}}
NODES = {"demo source": ["--source", "demo"],
         "two demo sources": ["--source", "demo", "--source", "demo"]}
SUMMARY = re.compile(r"published (\d+) frames in ([\d.]+) s \(([\d.]+) fps\), dropped (\d+), "
                     r"latency p50 ([\d.]+) ms p99 ([\d.]+) ms")


def environment(setting: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in (*OMP_WAIT_KNOBS, "OMP_NUM_THREADS")}
    return {**env, **SETTINGS[setting]}


def node(setting: str, sources: list[str], seconds: float) -> dict:
    """`rtseg run` on `sources`: once it logs its topics (it is running), `seconds` of it,
    then SIGINT; its summary's figures (counted from its own start)."""
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "run", *sources, "--bind",
                             "tcp://127.0.0.1:*", "--status-every", "0"],
                            env=environment(setting), stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if "(topics " in line:
            break
    time.sleep(seconds)  # the measured span itself, not a wait for a condition
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    found = SUMMARY.search(err)
    if found is None:
        raise SystemExit(f"no summary from the node ({setting}):\n{''.join(lines)}{err}")
    published, span, fps, dropped, p50, p99 = (float(g) for g in found.groups())
    return {"fps": fps, "published": int(published), "seconds": span,
            "dropped": int(dropped), "latency_p50_ms": p50, "latency_p99_ms": p99}


def bench(setting: str, seconds: float) -> dict:
    """`rtseg bench --json` at 512x1024, eager torch: engine and pipeline FPS."""
    done = subprocess.run([sys.executable, "-m", "rtseg", "bench", "--model", "demo",
                           "--engine", "torch", "--height", "512", "--width", "1024",
                           "--seconds", str(seconds), "--json"], env=environment(setting),
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"rtseg bench failed ({setting}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"engine_fps": result["engine"]["fps"], "pipeline_fps": result["pipeline"]["fps"],
            "threads": result.get("device")}


def serve(setting: str, model: str, jpeg: bytes, requests: int) -> dict:
    """`rtseg serve` with `setting`: 3 warm-up requests, then for 1, 2 and 4 concurrent
    clients `requests` POSTs of `jpeg` in all: requests/s and latency p50 (ms)."""
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "serve", "--port", "0",
                             "--model", model], env=environment(setting),
                            stderr=subprocess.PIPE, text=True)
    url = None
    for line in proc.stderr:
        found = re.search(r"at (http://\S+)/segment", line)
        if found:
            url = found.group(1) + "/segment"
            break
    if url is None:
        raise SystemExit(f"rtseg serve did not start ({setting}): {proc.communicate()[1]}")

    def client(count: int, latencies: list[float]) -> None:
        for _ in range(count):
            start = time.perf_counter()
            post = urllib.request.Request(url, data=jpeg, headers={"Content-Type": "image/jpeg"})
            with urllib.request.urlopen(post, timeout=120) as answer:
                answer.read()
            latencies.append(time.perf_counter() - start)

    client(3, [])
    result = {}
    for clients in (1, 2, 4):
        latencies: list[float] = []
        threads = [threading.Thread(target=client, args=(requests // clients, latencies))
                   for _ in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        latencies.sort()
        result[f"{clients} clients"] = {
            "fps": len(latencies) / (time.perf_counter() - start),
            "latency_p50_ms": latencies[len(latencies) // 2] * 1e3}
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    return result


def serve_main(args) -> None:
    """--serve: the HTTP server's cases, spin against passive, rounds alternating."""
    import cv2

    image = cv2.imread(args.serve)
    if image is None:
        raise SystemExit(f"cannot read {args.serve}")
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    settings = ("spin", "passive")
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for setting in settings:
            runs[setting].append(serve(setting, args.model, jpeg, args.requests))
    lines = [f"rtseg serve --model {args.model}, {image.shape[1]}x{image.shape[0]} JPEG",
             f"{'clients':<10} {'setting':<9} {'req/s per round':<22} {'mean':>6}  p50 ms"]
    for clients in runs["spin"][0]:
        for setting in settings:
            rounds = [run[clients] for run in runs[setting]]
            fps = " ".join(f"{r['fps']:.2f}" for r in rounds)
            p50 = " ".join(f"{r['latency_p50_ms']:.0f}" for r in rounds)
            lines.append(f"{clients:<10} {setting:<9} {fps:<22} {mean(rounds, 'fps'):>6.2f}  "
                         f"{p50}")
    save_result(args.out, args.name, {"serve": runs, "model": args.model,
                                      "image": image.shape[:2], "settings": SETTINGS},
                "omp_wait.py", "\n".join(lines))


def mean(runs: list[dict], key: str) -> float:
    return sum(run[key] for run in runs) / len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--bench-seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--serve", metavar="IMAGE", help="measure rtseg serve instead")
    parser.add_argument("--model", default="demo", help="--serve: the served model")
    parser.add_argument("--requests", type=int, default=12, help="--serve: per client count")
    args = parser.parse_args()
    if args.serve:
        serve_main(args)
        return
    runs: dict[str, dict[str, list]] = {case: {s: [] for s in SETTINGS}
                                        for case in [*NODES, "bench 512x1024"]}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            for case, sources in NODES.items():
                runs[case][setting].append(node(setting, sources, args.seconds))
            runs["bench 512x1024"][setting].append(bench(setting, args.bench_seconds))
    lines = [f"{'case':<18} {'setting':<11} {'fps per round':<22} {'mean':>6}  "
             "latency p50 / p99 ms"]
    for case, by_setting in runs.items():
        for setting, rounds in by_setting.items():
            key = "pipeline_fps" if case.startswith("bench") else "fps"
            fps = " ".join(f"{run[key]:.1f}" for run in rounds)
            if case.startswith("bench"):
                extra = "engine alone " + " ".join(f"{r['engine_fps']:.2f}" for r in rounds)
            else:
                extra = " ".join(f"{r['latency_p50_ms']:.0f}/{r['latency_p99_ms']:.0f}"
                                 for r in rounds)
            lines.append(f"{case:<18} {setting:<11} {fps:<22} {mean(rounds, key):>6.2f}  {extra}")
    save_result(args.out, args.name, {"runs": runs, "settings": SETTINGS}, "omp_wait.py",
                "\n".join(lines))


if __name__ == "__main__":
    main()
