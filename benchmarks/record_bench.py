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
