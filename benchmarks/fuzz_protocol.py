"""Fuzz the wire readers: N hostile frames over a real PUB/SUB pair into MaskSubscriber.

    python benchmarks/fuzz_protocol.py --cases 100000 [--seed 1] [--size 12x20] \
        [--name cpu-fuzz-protocol] [--out benchmarks/results]

Frames come from `tests/wire_fuzz.py` (seeded: random bytes, mutated valid frames of every
kind, hostile values under every key: nesting to 20,000 deep, length prefixes claiming
gigabytes, 2M-element arrays, wrong types; masks of `--size`, small by default, 300x400
for frames whose mask bytes the reader sets aside). Each is sent, received and decoded in
lockstep; the outcome is counted: accepted, ProtocolError, or any other exception (the
target: none). Records peak RSS of this process, the worst and p99 time per case, and the
command, in results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from wire_fuzz import cases  # noqa: E402

from rtseg.client import MaskSubscriber  # noqa: E402
from rtseg.protocol import ProtocolError  # noqa: E402
from rtseg.stream.publisher import MaskPublisher  # noqa: E402

TOPICS = ["cam/drivable", "cam/classes", "cam/image", "cam/status"]


def rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def join(pub: MaskPublisher, sub: MaskSubscriber) -> None:
    """Send a valid probe until the subscription has reached the publisher."""
    probe = next(f for f in cases(0) if f.startswith(b"cam/status\x00"))
    while True:
        pub.send_frame(probe)
        try:
            sub.recv_frame(timeout_ms=50)
            return
        except TimeoutError:
            continue


def fuzz(n: int, seed: int, size: tuple[int, int]) -> dict:
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    times: list[float] = []
    with MaskPublisher("tcp://127.0.0.1:*", hwm=100_000) as pub, MaskSubscriber(
            pub.endpoint, TOPICS, timeout_ms=5000) as sub:
        join(pub, sub)
        rss_start = rss_mb()
        prefixes = tuple(t.encode() + b"\x00" for t in TOPICS)
        frames = (f for f in cases(seed, size) if f.startswith(prefixes))  # what ZeroMQ delivers
        for frame in itertools.islice(frames, n):
            pub.send_frame(frame)
            start = time.perf_counter()
            try:
                sub.recv_message()
                counts["accepted"] += 1
            except ProtocolError:
                counts["ProtocolError"] += 1
            except Exception as exc:  # what the target says must never happen
                counts[type(exc).__name__] += 1
                examples.setdefault(type(exc).__name__, traceback.format_exc()[-800:])
            times.append((time.perf_counter() - start) * 1e3)
    other = sum(v for k, v in counts.items() if k not in ("accepted", "ProtocolError"))
    return {"cases": n, "seed": seed, "outcomes": dict(counts), "other_exceptions": other,
            "examples": examples, "rss_mb_after_setup": round(rss_start, 1),
            "peak_rss_mb": round(rss_mb(), 1),
            "time_per_case_ms": {"p50": float(np.percentile(times, 50)),
                                 "p99": float(np.percentile(times, 99)),
                                 "max": float(max(times))}}


def write(result: dict, out: Path, name: str, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()}, {platform.python_version()}", **result}
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    t = result["time_per_case_ms"]
    lines = [
        "# Protocol fuzzing (CPU)", "", f"`{command}` ({result['date']})", "",
        "| cases | accepted | ProtocolError | other exceptions | peak RSS | per case p50 / "
        "p99 / max |", "|---|---|---|---|---|---|",
        f"| {result['cases']} | {result['outcomes'].get('accepted', 0)} | "
        f"{result['outcomes'].get('ProtocolError', 0)} | {result['other_exceptions']} | "
        f"{result['peak_rss_mb']} MB ({result['rss_mb_after_setup']} MB after imports) | "
        f"{t['p50']:.3f} / {t['p99']:.3f} / {t['max']:.1f} ms |", "",
        "Frames: `tests/wire_fuzz.py` (seeded), sent over a real PUB/SUB pair on loopback "
        "and decoded by `MaskSubscriber.recv_message` in lockstep. Time per case includes "
        "the loopback transfer.",
    ]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", default="12x20", help="mask size HxW of the valid frames")
    parser.add_argument("--name", default="cpu-fuzz-protocol")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    result = fuzz(args.cases, args.seed, size)
    write(result, Path(args.out), args.name,
          "python benchmarks/fuzz_protocol.py " + " ".join(sys.argv[1:]))
    print(json.dumps({k: result[k] for k in ("cases", "outcomes", "other_exceptions",
                                             "peak_rss_mb", "time_per_case_ms")}))
    sys.exit(1 if result["other_exceptions"] else 0)


if __name__ == "__main__":
    main()
