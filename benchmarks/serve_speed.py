"""`rtseg serve` answered over HTTP, eager checkpoint against compiled engines, in one run.

    python benchmarks/serve_speed.py --model benchmarks/models/camvid.pt \
        --images ../shared/data/camvid/val --engines torch openvino [--requests 60] \
        [--rounds 2] [--name NAME]

Starts `rtseg serve --engine E` (port 0, CPU) for each engine in turn, `--rounds` times
(the engines taking turns), POSTs the same `--requests` PNG images (the folder's, in order,
cycled) one after another and times each round trip on the client, and reads the server's
own stage times from `?format=json`. The first request of each server is not counted (the
engine's first inference). Writes results/NAME.{json,md}: per engine the round-trip p50 /
p99 / mean ms and requests/s, the server's mean infer ms, and each engine's speed-up over
the eager checkpoint.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
from http_latency import started  # noqa: I001 (benchmarks/ is sys.path[0])

HERE = Path(__file__).resolve().parent


def one_round(model: str, engine: str, cache: str, bodies: list[bytes]) -> dict:
    """One server of `engine`: every body POSTed once in order -> round trips (ms), infer (ms)."""
    trips, infer = [], []
    with ExitStack() as stack, httpx.Client(timeout=120) as client:
        url = started(stack, ["serve", "--model", model, "--port", "0", "--device", "cpu",
                              "--engine", engine, "--engine-cache", cache], "http://",
                      ready="serving")
        client.post(url, content=bodies[0]).raise_for_status()  # first inference
        for body in bodies:
            t0 = time.perf_counter()
            reply = client.post(url, params={"format": "json"}, content=body)
            trips.append((time.perf_counter() - t0) * 1e3)
            reply.raise_for_status()
            infer.append(reply.json()["timings_ms"]["infer"])
        name = client.get(url.replace("/segment", "/model")).json()["name"]
    return {"trips": trips, "infer": infer, "name": name}


def summary(trips: list[float], infer: list[float], name: str) -> dict:
    t = np.asarray(trips)
    return {"model": name, "requests": len(t), "p50_ms": float(np.percentile(t, 50)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
            "per_s": float(1e3 / t.mean()), "infer_mean_ms": float(np.mean(infer))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--images", required=True, help="folder of images to POST")
    parser.add_argument("--engines", nargs="+", default=["torch", "openvino"])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", default="engines/cache")
    parser.add_argument("--name", default="cpu-serve-speed")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in
                   (".png", ".jpg", ".jpeg"))
    if not files:
        sys.exit(f"no PNG or JPEG images in {args.images}")
    bodies = [files[i % len(files)].read_bytes() for i in range(args.requests)]
    got: dict[str, dict] = {e: {"trips": [], "infer": []} for e in args.engines}
    for _ in range(args.rounds):
        for engine in args.engines:
            run = one_round(args.model, engine, args.cache, bodies)
            got[engine]["trips"] += run["trips"]
            got[engine]["infer"] += run["infer"]
            got[engine]["name"] = run["name"]
    rows = {e: summary(**g) for e, g in got.items()}
    base = rows.get("torch")
    for row in rows.values():
        row["x_torch"] = base["mean_ms"] / row["mean_ms"] if base else None
    write(args, rows)


def write(args, rows: dict) -> None:
    from record_bench import _cpu_count, _now, _versions

    from rtseg.device import describe_cpu

    command = "python benchmarks/serve_speed.py " + " ".join(sys.argv[1:])
    meta = {"command": command, "date": _now(), "versions": _versions(),
            "host": f"{platform.machine()}, {_cpu_count()} CPUs, {describe_cpu()}"}
    out = HERE / "results"
    (out / f"{args.name}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    recorded = f"Recorded {meta['date']} ({meta['host']}); {meta['versions']}"
    lines = [f"# {args.name}", "", f"`{command}`", "", recorded, "",
             "| engine | model | requests | round trip p50 ms | p99 ms | mean ms | requests/s "
             "| server infer ms | x torch |", "|---|---|---|---|---|---|---|---|---|"]
    for engine, r in rows.items():
        x = f"{r['x_torch']:.2f}" if r["x_torch"] else "-"
        lines.append(f"| {engine} | {r['model']} | {r['requests']} | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['mean_ms']:.1f} | {r['per_s']:.1f} | "
                     f"{r['infer_mean_ms']:.1f} | {x} |")
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
