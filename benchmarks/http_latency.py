"""How long the HTTP commands take to answer a small request on a kept-alive connection.

    python benchmarks/http_latency.py [--requests 50] [--name cpu-http-latency]

Starts a demo node (`rtseg run --source demo --image-topic`), `rtseg view` on it and
`rtseg serve --model demo`, each on a free loopback port, then GETs `--requests` times over
one kept-alive connection per server: the viewer's /demo/info.json (what its page polls)
and /demo/overlay.jpg, and serve's /healthz, /model and /metrics (a Prometheus scrape).
Median and p90 ms per path, from the client. A median near 40 ms is Nagle's algorithm
waiting for the client's delayed ACK (the fix: TCP_NODELAY on the server's connections).
Writes results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
START_S = 120.0


def started(stack: ExitStack, args: list[str], marker: str, ready: str = "") -> str:
    """`rtseg -v ARGS` in the background (stopped by SIGINT on exit) -> `marker` and the
    word after it in the first line of its log that has `marker` (and `ready`)."""
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "-v", *args],
                            stderr=subprocess.PIPE, text=True)

    def stop() -> None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    deadline, seen = time.monotonic() + START_S, []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if marker in seen[-1] and ready in seen[-1]:
            return marker + seen[-1].split(marker, 1)[1].split()[0]
    sys.exit(f"rtseg {args[0]} did not start:\n" + "".join(seen))


def timed_gets(url: str, paths: list[str], count: int) -> dict:
    """path -> {median_ms, p90_ms} of `count` GETs of it over one kept-alive connection."""
    rows = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for path in paths:
            client.get(path).raise_for_status()  # the connection open, first answer made
            times = []
            for _ in range(count):
                t0 = time.perf_counter()
                client.get(path).raise_for_status()
                times.append((time.perf_counter() - t0) * 1e3)
            rows[path] = {"median_ms": float(np.median(times)),
                          "p90_ms": float(np.percentile(times, 90))}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--name", default="cpu-http-latency")
    args = parser.parse_args()
    with ExitStack() as stack:
        endpoint = started(stack, ["run", "--source", "demo", "--image-topic", "--bind",
                                   "tcp://127.0.0.1:*", "--status-every", "0"],
                           "tcp://127.0.0.1:")
        view = started(stack, ["view", endpoint, "--port", "0"], "http://")
        serve = started(stack, ["serve", "--model", "demo", "--device", "cpu", "--port",
                                "0"], "http://", ready="serving")
        with httpx.Client(timeout=60) as client:  # the viewer has had a frame
            deadline = time.monotonic() + START_S
            while client.get(view.rstrip("/") + "/demo/overlay.jpg").status_code != 200:
                if time.monotonic() > deadline:
                    sys.exit("the viewer got no frame from the demo node")
                time.sleep(0.2)
        rows = {"view": timed_gets(view.rstrip("/"), ["/demo/info.json", "/demo/overlay.jpg"],
                                   args.requests),
                "serve": timed_gets(serve.split("/segment")[0],
                                    ["/healthz", "/model", "/metrics"], args.requests)}
    write(args, rows)


def write(args, rows: dict) -> None:
    from record_bench import _cpu_count, _now, _versions

    from rtseg.device import describe_cpu

    command = "python benchmarks/http_latency.py " + " ".join(sys.argv[1:])
    host = f"{platform.machine()}, {_cpu_count()} CPUs, {describe_cpu()}"
    meta = {"command": command.strip(), "date": _now(), "versions": _versions(), "host": host}
    out = HERE / "results"
    (out / f"{args.name}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    lines = [f"# {args.name}", "", f"`{meta['command']}`", "",
             f"Recorded {meta['date']} ({host}); {meta['versions']}", "",
             f"| command | path | median ms | p90 ms ({args.requests} GETs, one connection) |",
             "|---|---|---|---|"]
    for command_name, paths in rows.items():
        for path, r in paths.items():
            lines.append(f"| rtseg {command_name} | {path} | {r['median_ms']:.2f} | "
                         f"{r['p90_ms']:.2f} |")
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
