"""What the argmax at the end of an OpenVINO engine costs: tails of one graph, timed
taking turns on one machine.

    python benchmarks/openvino_argmax.py [--checkpoint benchmarks/models/camvid.pt] \
        [--size 512x1024] [--precision bf16] [--rounds 6] [--per-round 8]
    python benchmarks/openvino_argmax.py --engine engines/NAME.xml [...] \
        [--frames DIR] [--name RESULT]

The checkpoint is converted to OpenVINO once (or `--engine` IRs are read as they are,
compiled with the inference precision of the manifest beside each), then compiled once per
tail (LATENCY hint, 2 threads by default): logits out (N, C, H, W) float32; the node's
class map (rtseg.backends.openvino_backend.with_argmax: a stable TopK over the logits
reshaped to (N, C, H*W)); the stable TopK over the 4-D logits the node used before; a plain
TopK; a TopK over the logits transposed to channels-last. Reports each tail's median and
minimum latency, the milliseconds its TopK node takes (a PERF_COUNT compile), and whether
each argmax gives the host argmax of the engine's own logits on every pixel of a random
input and of `--frames` real images. `--name` also writes results/NAME.json and NAME.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def tails(model) -> dict:
    """Name -> an ov.Model: `model` ((N, 3, H, W) -> logits) with one of the tails."""
    import openvino as ov
    from openvino import opset11 as ops

    from rtseg.backends.openvino_backend import with_argmax

    def classes(index, axis: int):
        squeezed = ops.squeeze(index, np.array([axis], np.int64))
        return ov.Model([ops.result(ops.convert(squeezed, ov.Type.u8))],
                        model.get_parameters(), "tail")

    logits = model.get_results()[0].input_value(0)
    four_d = ops.topk(logits, np.int64(1), 1, "max", "value", ov.Type.i32, stable=True)
    plain = ops.topk(logits, np.int64(1), 1, "max", "value", ov.Type.i32).output(1)
    nhwc = ops.transpose(logits, np.array([0, 2, 3, 1], np.int64))
    last = ops.topk(nhwc, np.int64(1), 3, "max", "value", ov.Type.i32, stable=True).output(1)
    return {"logits": model, "the node's (stable TopK over N, C, H*W)": with_argmax(
                model.clone()),
            "stable TopK over N, C, H, W (before)": classes(four_d.output(1), 1),
            "plain TopK": classes(plain, 1), "TopK over NHWC": classes(last, 3)}


def topk_ms(core, model, config: dict, feed: dict, calls: int) -> float:
    """Mean ms per call of the TopK nodes of `model` (a PERF_COUNT compile)."""
    request = core.compile_model(model, "CPU", {**config, "PERF_COUNT": True}
                                 ).create_infer_request()
    request.infer(feed)
    total = 0.0
    for _ in range(calls):
        request.infer(feed)
        total += sum(p.real_time.total_seconds() * 1000 for p in request.profiling_info
                     if p.node_type == "TopK")
    return total / calls


def measure(model, config: dict, inputs: list[np.ndarray], args) -> dict:
    """Per tail: median / min ms over the turns, TopK node ms, % = host argmax."""
    import openvino as ov

    core = ov.Core()
    graphs = tails(model)
    requests = {name: core.compile_model(m, "CPU", config).create_infer_request()
                for name, m in graphs.items()}
    same = {name: [] for name in requests if name != "logits"}
    for x in inputs:
        host = requests["logits"].infer({0: x})[0].argmax(1).astype(np.uint8)
        for name in same:
            same[name].append(float((requests[name].infer({0: x})[0] == host).mean()))
    feed, times = {0: inputs[0]}, {name: [] for name in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            for _ in range(args.per_round):
                start = time.perf_counter()
                request.infer(feed)
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: {"median_ms": round(float(np.median(t)), 2), "min_ms": round(min(t), 2),
                   "topk_ms": round(topk_ms(core, graphs[name], config, feed, args.per_round),
                                    2),
                   "host_argmax_pct": round(100 * float(np.mean(same[name])), 4)
                   if name in same else None} for name, t in times.items()}


def engine_input(path: Path) -> tuple:
    """(ov.Model of the IR, its compile config from the manifest beside it)."""
    import openvino as ov

    from rtseg.backends.openvino_backend import HINTS

    manifest = path.with_suffix(".json")
    runtime = json.loads(manifest.read_text()).get("runtime", {}) if manifest.exists() else {}
    return ov.Core().read_model(path), HINTS.get(
        runtime.get("inference_precision_hint", "f32"), "f32")


def real_inputs(folder: Path | None, size: tuple[int, int], count: int = 8) -> list:
    """Up to `count` images of `folder` as (1, 3, H, W) float32 inputs (ImageNet stats)."""
    import cv2

    from rtseg.backends.preprocess import Preprocessor

    pre = Preprocessor(size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    files = sorted(folder.glob("*.png"))[:count] if folder else []
    return [pre(cv2.imread(str(f))).numpy() for f in files]


def report(result: dict) -> str:
    lines = [f"# {result['name']}: the argmax at the end of an OpenVINO engine", "",
             f"`{result['command']}`  ", result["host"], "",
             "| graph | input | precision | tail | median ms | min ms | TopK node ms "
             "| % = host argmax |", "|---|---|---|---|---|---|---|---|"]
    for run in result["runs"]:
        for tail, r in run["tails"].items():
            pct = "-" if r["host_argmax_pct"] is None else f"{r['host_argmax_pct']:.3f}"
            lines.append(f"| {run['graph']} | {run['size']} | {run['precision']} | {tail} "
                         f"| {r['median_ms']} | {r['min_ms']} | {r['topk_ms']} | {pct} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import openvino as ov

    from rtseg.checkpoint import load_checkpoint
    from rtseg.device import describe_cpu

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="benchmarks/models/camvid.pt")
    parser.add_argument("--engine", nargs="+", type=Path, help="OpenVINO IRs instead")
    parser.add_argument("--size", default="512x1024", help="with --checkpoint")
    parser.add_argument("--precision", choices=("bf16", "f32"), default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=8)
    parser.add_argument("--frames", type=Path, help="a folder of images to compare maps on")
    parser.add_argument("--name", help="write results/NAME.json and NAME.md")
    args = parser.parse_args()
    runs = []
    for source in args.engine or [args.checkpoint]:
        if args.engine:
            model, precision = engine_input(source)
        else:
            net = load_checkpoint(source).build("cpu")  # (N, 3, H, W) -> (N, C, H, W)
            h, w = (int(v) for v in args.size.split("x"))
            x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
            model, precision = ov.convert_model(net, example_input=x), args.precision
            model.reshape([1, 3, h, w])  # traced with dynamic sizes: fix them
        shape = tuple(model.get_parameters()[0].get_partial_shape().to_shape())
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
                  "INFERENCE_NUM_THREADS": args.threads}
        inputs = [x, *real_inputs(args.frames, shape[2:])]
        runs.append({"graph": Path(source).name, "size": f"{shape[2]}x{shape[3]}",
                     "precision": precision, "inputs": len(inputs),
                     "tails": measure(model, config, inputs, args)})
    result = {"name": args.name or "openvino-argmax", "command": "python " + " ".join(sys.argv),
              "host": f"CPU: {describe_cpu()}, {args.threads} threads; median / min of "
                      f"{args.rounds * args.per_round} calls per tail, the tails taking turns; "
                      f"host argmax compared on a random input and {len(inputs) - 1} real "
                      "frames", "runs": runs}
    print(report(result))
    if args.name:
        (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
        (RESULTS / f"{args.name}.md").write_text(report(result))


if __name__ == "__main__":
    main()
