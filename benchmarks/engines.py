"""Engine latency per model and size, every runtime measured in one run, ratios to eager.

    python benchmarks/engines.py [--models lraspp_mobilenet_v3 ...] [--sizes 256x512 512x1024]
                                 [--formats eager channels_last onnx aoti tensorrt]
                                 [--device cpu|cuda] [--iters 20] [--out benchmarks/results]

Models are built with random weights (latency does not depend on them) and 11 classes.
Each engine is compiled through rtseg's own exporters and run through its backends, on a
(1, 3, H, W) input, after warm-up; the table gives median and p90 milliseconds and the
median's speed-up over eager FP32 (FP16 engines on CUDA).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rtseg.checkpoint import CheckpointMeta, save_checkpoint
from rtseg.config import CompileConfig, parse_size
from rtseg.models import MODELS, build_model


def timed(fn, x, iters: int, sync) -> tuple[float, float]:
    """(median, p90) milliseconds of fn(x) after 3 warm-up calls."""
    for _ in range(3):
        fn(x)
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(x)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def eager_variants(model, device, channels_last: bool):
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(x):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return model(x)

    return run


def compiled(ckpt_path: Path, fmt: str, size, device: str, out: Path):
    from rtseg.backends import load_backend
    from rtseg.export import compile_checkpoint

    cfg = CompileConfig(checkpoint=str(ckpt_path), format=fmt, height=size[0], width=size[1],
                        out=str(out), device=device, frames=2, threshold=0.0)
    return load_backend(str(compile_checkpoint(cfg).path), device)


def measure(name: str, size, formats, device: str, iters: int, tmp: Path) -> dict:
    torch.manual_seed(0)
    model = build_model(name, 11)
    meta = CheckpointMeta(model=name, classes=tuple(f"c{i}" for i in range(11)),
                          input_size=size)
    ckpt = save_checkpoint(tmp / f"{name}.pt", model, meta)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.randn(1, 3, *size, device=dev)
    row = {}
    for fmt in formats:
        try:
            if fmt in ("eager", "channels_last"):
                fn = eager_variants(model, dev, fmt == "channels_last")
            else:
                fn = compiled(ckpt, fmt, size, device, tmp / fmt)
            row[fmt] = timed(fn, x, iters, sync)
        except Exception as exc:  # report what could not be measured, keep going
            row[fmt] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return row


def table(results: dict, formats) -> list[str]:
    lines = ["| model | size | " + " | ".join(f"{f} ms (x eager)" for f in formats) + " |",
             "|---|---|" + "---|" * len(formats)]
    for (name, size), row in results.items():
        eager = row.get("eager")
        cells = []
        for f in formats:
            value = row.get(f)
            if isinstance(value, tuple):
                ratio = eager[0] / value[0] if isinstance(eager, tuple) else float("nan")
                cells.append(f"{value[0]:.1f} (p90 {value[1]:.1f}) x{ratio:.2f}")
            else:
                cells.append(str(value))
        lines.append(f"| {name} | {size} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", default=["256x512", "512x1024"])
    parser.add_argument("--formats", nargs="+",
                        default=["eager", "channels_last", "onnx", "aoti"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for text in args.sizes:
                size = parse_size(text)
                results[(name, text)] = measure(name, size, args.formats, args.device,
                                                args.iters, Path(tmp))
                print(table({(name, text): results[(name, text)]}, args.formats)[-1],
                      flush=True)
    write(Path(args.out), args, results)


def write(out: Path, args, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    device = (torch.cuda.get_device_name(0) if args.device.startswith("cuda") else
              f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    tag = "gpu" if args.device.startswith("cuda") else "cpu"
    header = [f"# Engine latency, batch 1, {device}", "",
              "Command: `python benchmarks/engines.py " + " ".join(
                  f"--{k} {' '.join(v) if isinstance(v, list) else v}"
                  for k, v in vars(args).items() if k != "out") + "`  ",
              f"torch {torch.__version__}; median of {args.iters} runs after warm-up; "
              "x = speed-up of the median over eager FP32.", ""]
    (out / f"{tag}-engines.md").write_text("\n".join(header + table(results, args.formats))
                                           + "\n")
    plain = {f"{n} {s}": {f: v for f, v in row.items()} for (n, s), row in results.items()}
    (out / f"{tag}-engines.json").write_text(json.dumps(plain, indent=1) + "\n")


if __name__ == "__main__":
    main()
