"""Engine latency per model and size, every runtime measured in one run, ratios to eager.

    python benchmarks/engines.py [--models lraspp_mobilenet_v3 ...] [--sizes 256x512 512x1024]
                                 [--formats eager channels_last onnx aoti tensorrt
                                            openvino-fp32 openvino-bf16 openvino-int8]
                                 [--device cpu|cuda] [--iters 20] [--rounds 4]
                                 [--calib DIR] [--out benchmarks/results]

Models are built with random weights (latency does not depend on them) and 11 classes.
Each engine is compiled through rtseg's own exporters and run through its backends, on a
(1, 3, H, W) input, after warm-up; the engines of one model and size take turns in
`rounds` rounds of iters / rounds calls, so that the machine's drift (it is shared) affects
them alike. The table gives median and p90 milliseconds and the median's speed-up over
eager FP32 (FP16 engines on CUDA); `openvino-P` is OpenVINO at precision P (int8 calibrated
on --calib DIR, default: generated road scenes), and a last line compares OpenVINO's best
with ONNX Runtime.
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


def timed(fn, x, iters: int, sync) -> list[float]:
    """Milliseconds of `iters` calls fn(x)."""
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(x)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


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


def compiled(ckpt_path: Path, fmt: str, size, device: str, out: Path, calib: str | None):
    """A backend of format `fmt` (`openvino-P`: OpenVINO at precision P)."""
    from rtseg.backends import load_backend
    from rtseg.export import compile_checkpoint

    fmt, _, precision = fmt.partition("-") if fmt.startswith("openvino") else (fmt, "", "")
    cfg = CompileConfig(checkpoint=str(ckpt_path), format=fmt, height=size[0], width=size[1],
                        out=str(out), device=device, frames=2, threshold=0.0,
                        precision=precision or None,
                        calib=calib if precision == "int8" else None)
    return load_backend(str(compile_checkpoint(cfg).path), device)


def measure(name: str, size, formats, device: str, iters: int, rounds: int, tmp: Path,
            calib: str | None) -> dict:
    torch.manual_seed(0)
    model = build_model(name, 11)
    meta = CheckpointMeta(model=name, classes=tuple(f"c{i}" for i in range(11)),
                          input_size=size)
    ckpt = save_checkpoint(tmp / f"{name}.pt", model, meta)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.randn(1, 3, *size, device=dev)
    row, runners = {}, {}
    for fmt in formats:
        try:
            if fmt in ("eager", "channels_last"):
                runners[fmt] = eager_variants(model, dev, fmt == "channels_last")
            else:
                runners[fmt] = compiled(ckpt, fmt, size, device, tmp / fmt, calib)
            timed(runners[fmt], x, 3, sync)  # warm-up
        except Exception as exc:  # report what could not be measured, keep going
            row[fmt] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    times: dict[str, list[float]] = {fmt: [] for fmt in runners}
    for _ in range(rounds):  # the engines take turns
        for fmt, fn in runners.items():
            times[fmt] += timed(fn, x, max(1, iters // rounds), sync)
    for fmt, values in times.items():
        row[fmt] = (float(np.median(values)), float(np.percentile(values, 90)))
    return {fmt: row[fmt] for fmt in formats}


def scenes_folder(folder: Path, count: int = 32) -> str:
    """`count` generated 360x640 road scenes as PNGs (the default int8 calibration)."""
    import cv2

    from rtseg.data import synthetic

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        image = synthetic.render_scene(rng, 360, 640)[0]
        cv2.imwrite(str(folder / f"scene_{i:03d}.png"), image[:, :, ::-1])
    return str(folder)


def versus_onnx(results: dict) -> list[str]:
    """Per model and size: OpenVINO's fastest precision against ONNX Runtime FP32."""
    lines = []
    for (name, size), row in results.items():
        ours = {f: v for f, v in row.items() if f.startswith("openvino") and isinstance(v, tuple)}
        if ours and isinstance(row.get("onnx"), tuple):
            best = min(ours, key=lambda f: ours[f][0])
            lines.append(f"- {name} {size}: {best} {ours[best][0]:.1f} ms, ONNX Runtime "
                         f"{row['onnx'][0]:.1f} ms: x{row['onnx'][0] / ours[best][0]:.2f}")
    return lines


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
                        default=["eager", "channels_last", "onnx", "aoti", "openvino-fp32",
                                 "openvino-bf16", "openvino-int8"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calib", help="images for the int8 calibration [generated scenes]")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--name", help="file stem of the results [cpu-engines / gpu-engines]")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        calib = args.calib or scenes_folder(Path(tmp) / "calib")
        for name in args.models:
            for text in args.sizes:
                size = parse_size(text)
                results[(name, text)] = measure(name, size, args.formats, args.device,
                                                args.iters, args.rounds, Path(tmp), calib)
                print(table({(name, text): results[(name, text)]}, args.formats)[-1],
                      flush=True)
    print("\n".join(versus_onnx(results)))
    write(Path(args.out), args, results)


def write(out: Path, args, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    device = (torch.cuda.get_device_name(0) if args.device.startswith("cuda") else
              f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    stem = args.name or ("gpu" if args.device.startswith("cuda") else "cpu") + "-engines"
    header = [f"# Engine latency, batch 1, {device}", "",
              "Command: `python benchmarks/engines.py " + " ".join(
                  f"--{k} {' '.join(v) if isinstance(v, list) else v}"
                  for k, v in vars(args).items() if k != "out" and v is not None) + "`  ",
              f"torch {torch.__version__}{_openvino()}; median of {args.iters} runs after "
              f"warm-up, the engines taking turns in {args.rounds} rounds; x = speed-up of the "
              "median over eager FP32. On a machine shared with other jobs absolute times are "
              "noisy: compare within one run.", ""]
    lines = header + table(results, args.formats)
    if versus_onnx(results):
        lines += ["", "OpenVINO's fastest precision against ONNX Runtime FP32 (same run):",
                  *versus_onnx(results)]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    plain = {f"{n} {s}": {f: v for f, v in row.items()} for (n, s), row in results.items()}
    (out / f"{stem}.json").write_text(json.dumps(plain, indent=1) + "\n")


def _openvino() -> str:
    try:
        import openvino
    except ImportError:
        return ""
    return f", OpenVINO {openvino.__version__}"


if __name__ == "__main__":
    main()
