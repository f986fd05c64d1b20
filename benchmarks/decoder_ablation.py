"""What each decoder of a CamVid LR-ASPP checkpoint buys and costs, without training.

    python benchmarks/decoder_ablation.py --name camvid-decoder-ablation \
        [--checkpoint benchmarks/models/camvid.pt] [--size 512x1024] [--precision bf16]

Writes the checkpoint without its full-resolution correction, then without the stride-2 one
too, to runs/ablation/ (`rtseg adjust --drop refine1 [--drop refine2]`: each correction is
added to the logits, so the network without it works with every other weight unchanged),
and with every decoder but its logits upsampled to full resolution once (`rtseg adjust
--upsample-once`: the stride-2 correction summed before the upsampling, not after).
For each variant: CamVid val mIoU and Road IoU through `rtseg eval --data camvid` (the
node's pipeline at the checkpoint's input size), and the OpenVINO engine's latency at
`--size` (LATENCY hint, 2 threads, the variants taking turns, median of rounds x per-round
inferences of logits out). Writes results/NAME.json and results/NAME.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"as trained": ((), False), "without refine1": (("refine1",), False),
            "without refine1 and refine2": (("refine1", "refine2"), False),
            "upsampled once": ((), True)}


def write_variants(src: str, out_dir: Path) -> dict:
    """Variant name -> path of the checkpoint `src` without that variant's corrections
    (`rtseg adjust --drop`, and `--upsample-once` for "upsampled once"; the first variant
    is `src` itself). Corrections `src` has already lost are left out of a variant's drop,
    and a variant that would then change nothing new is skipped (camvid.pt has had no
    refine1 since 2026-12-05), as is "upsampled once" without a stride-2 decoder."""
    from rtseg.checkpoint import load_checkpoint
    from rtseg.training.adjust import adjust_checkpoint

    kwargs = load_checkpoint(src).meta.model_kwargs
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, seen = {}, set()
    for name, (dropped, once) in VARIANTS.items():
        present = tuple(c for c in dropped if kwargs.get(c))
        if (present, once) in seen or (once and not kwargs.get("refine2")):
            continue
        seen.add((present, once))
        stem = "-".join(present + (("once",) if once else ()))
        paths[name] = out_dir / f"{stem}.pt" if stem else Path(src)
        if stem:
            adjust_checkpoint(src, paths[name], drop=present, upsample_once=once)
    return paths


def latencies(paths: dict, size, precision: str, rounds: int, per_round: int) -> dict:
    """Variant -> median ms of its OpenVINO engine (1, 3, H, W) -> logits, turns taken."""
    import openvino as ov

    from rtseg.checkpoint import load_checkpoint

    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
              "INFERENCE_NUM_THREADS": 2}
    core, requests = ov.Core(), {}
    for name, path in paths.items():
        net = load_checkpoint(path).build("cpu")  # (N, 3, H, W) -> logits (N, C, H, W)
        graph = ov.convert_model(net, example_input=x)
        requests[name] = core.compile_model(graph, "CPU", config).create_infer_request()
    feed, times = {0: x.numpy()}, {name: [] for name in paths}
    for _ in range(rounds):
        for name, request in requests.items():
            request.infer(feed)  # one untimed inference after the switch
            for _ in range(per_round):
                start = time.perf_counter()
                request.infer(feed)
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def scores(path: Path, root: str) -> dict:
    """`rtseg eval PATH --data camvid --json`: mIoU, Road IoU, pixel accuracy in %."""
    cmd = [sys.executable, "-m", "rtseg", "eval", str(path), "--data", "camvid", "--root",
           root, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"miou": 100 * result["miou"], "road": 100 * result["iou"]["Road"],
            "pixel_accuracy": 100 * result["pixel_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="benchmarks/models/camvid.pt")
    parser.add_argument("--root", default="../shared/data/camvid")
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--precision", choices=("bf16", "f32"), default="bf16")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=8)
    parser.add_argument("--out-dir", default="runs/ablation")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    paths = write_variants(args.checkpoint, Path(args.out_dir))
    ms = latencies(paths, size, args.precision, args.rounds, args.per_round)
    rows = {name: {**scores(path, args.root), "ms": ms[name], "checkpoint": str(path)}
            for name, path in paths.items()}
    command = (f"python benchmarks/decoder_ablation.py --name {args.name} --checkpoint "
               f"{args.checkpoint} --size {args.size} --precision {args.precision}")
    result = {"name": args.name, "command": command, "rows": rows,
              "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
    lines = [f"# {args.name}: the decoders of {args.checkpoint}, removed without training", "",
             f"`{command}`  ", f"Recorded {result['date']}; accuracy through `rtseg eval "
             f"--data camvid` (101 val frames); engine: OpenVINO {args.precision}, "
             f"{args.size}, 2 threads, median of {args.rounds * args.per_round}.", "",
             "| network | val mIoU | Road IoU | pixel acc. | engine ms | vs as trained |",
             "|---|---|---|---|---|---|"]
    base = rows["as trained"]["ms"]
    lines += [f"| {n} | {r['miou']:.2f} | {r['road']:.2f} | {r['pixel_accuracy']:.2f} | "
              f"{r['ms']:.1f} | {base / r['ms']:.2f}x |" for n, r in rows.items()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
