"""Run `rtseg bench ... --json` and record its result in benchmarks/results/.

    python benchmarks/record_bench.py NAME -- [rtseg bench options]

writes results/NAME.json (the bench's JSON plus the command, date and versions) and
results/NAME.md (the bench's table, the command, and each target met or missed).
Example (the CPU target of issue 5):
    python benchmarks/record_bench.py cpu-bench-lraspp-512x1024 -- --model demo --seconds 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="file stem under results/ (or --out)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for NAME.json / NAME.md")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    parser.usage = "%(prog)s NAME [--out DIR] -- [rtseg bench options]"
    args = parser.parse_args(argv[:cut])  # before `--`: ours; after it: the bench's
    bench_args = argv[cut + 1:]
    command = [sys.executable, "-m", "rtseg", "bench", *bench_args, "--json"]
    # the bench's log (engine compiles, warnings) streams through: a slow step shows why
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"rtseg bench failed (exit {proc.returncode}); its messages are above")
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    from rtseg.device import describe_cpu

    shown = "rtseg bench " + shlex.join([*bench_args, "--json"])
    result["recorded"] = {"command": shown, "date": _now(), "versions": _versions(),
                          "host": f"{platform.machine()}, {_cpu_count()} CPUs, {describe_cpu()}"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    table = "\n".join(lines[_table_start(lines):-1])
    (out / f"{args.name}.md").write_text(
        f"# {args.name}\n\nCommand (repository root): `{shown}`  \n"
        f"Recorded {result['recorded']['date']} on {result['device']} "
        f"({result['recorded']['host']}); {result['recorded']['versions']}\n\n"
        f"```\n{table}\n```\n")
    print(table)


def node_parser(description: str, engine: str, seconds: float, rounds: int):
    """The options every same-run node comparison takes (overlap.py, frame_input.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("name", help="file stem under results/ (or --out)")
    parser.add_argument("--model", required=True, help="engine manifest, IR or checkpoint")
    parser.add_argument("--engine", default=engine, help="how a checkpoint runs (rtseg bench)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--frame-size", default=None, help="HxW of the in-memory frames "
                        "(default: the network's input size)")
    parser.add_argument("--seconds", type=float, default=seconds, help="per phase, all rounds")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", default=str(RESULTS))
    return parser


def node_config(args, **extra):
    """The BenchConfig (CPU) of `node_parser`'s parsed `args`; `extra` fields win."""
    from rtseg.config import BenchConfig, parse_size

    fields = {"model": args.model, "engine": args.engine, "height": args.height,
              "width": args.width, "seconds": args.seconds, "rounds": args.rounds,
              "warmup_s": args.warmup, "device": "cpu",
              "frame_size": parse_size(args.frame_size) if args.frame_size else None}
    return BenchConfig(**{**fields, **extra})


def save_result(out: str, name: str, result: dict, script: str, text: str) -> None:
    """Add `recorded` (the command as run from the repository root, date, versions, host) to
    `result`; write OUT/NAME.json and OUT/NAME.md (the command, then `text`); print `text`."""
    shown = f"python benchmarks/{script} " + shlex.join(sys.argv[1:])
    result["recorded"] = {"command": shown, "date": _now(), "versions": _versions(),
                          "host": f"{_cpu_count()} CPUs"}
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (folder / f"{name}.md").write_text(
        f"# {name}\n\nCommand (repository root): `{shown}`  \n"
        f"Recorded {result['recorded']['date']} ({result['recorded']['host']}); "
        f"{result['recorded']['versions']}\n\n```\n{text}\n```\n")
    print(text)


def _table_start(lines: list[str]) -> int:
    """Index of the bench's own header line: what an engine compiled on the way printed
    (torch.onnx's progress lines) stays out of the table."""
    return next((i for i, line in enumerate(lines) if line.startswith("rtseg bench:")), 0)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _versions() -> str:
    import torch

    parts = [f"torch {torch.__version__}"]
    for module in ("onnxruntime", "openvino", "tensorrt"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    if torch.cuda.is_available():
        parts.append(f"CUDA {torch.version.cuda}")
    return ", ".join(parts)


if __name__ == "__main__":
    main()
