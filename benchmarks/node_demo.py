"""Measure the streaming node end to end on this machine and write a markdown table.

    python benchmarks/node_demo.py [--frames 300] [--device cpu] [--out benchmarks/results]

Two runs of the real node (`rtseg.stream.node.run_node`) with the bundled demo checkpoint:
1. `--source demo`: the live 30 FPS generated source; the node keeps only the newest frame,
   so output FPS, drops and capture->publish latency are what a consumer would see.
2. a 360x640 MJPG video of generated frames, every frame in order: throughput of the node
   when it never waits for the source.
No subscriber is connected (publishing never blocks either way).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

from rtseg.config import RunConfig
from rtseg.data.synthetic import SceneStream
from rtseg.stream.node import run_node


def write_video(path: Path, frames: int) -> None:
    stream = SceneStream(seed=11)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 360))
    for _ in range(frames):
        writer.write(cv2.cvtColor(stream.next()[0], cv2.COLOR_RGB2BGR))
    writer.release()


def measure(source: str, frames: int, device: str) -> dict:
    cfg = RunConfig(source=source, bind="tcp://127.0.0.1:*", device=device, max_frames=frames,
                    status_every=0)
    report = run_node(cfg)
    return {k: getattr(report, k) for k in ("published", "dropped", "seconds", "fps",
                                            "latency_p50_ms", "latency_p99_ms",
                                            "demo_drivable_iou")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    results = {"live demo 360x640": measure("demo", args.frames, args.device)}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "drive.avi"
        write_video(video, args.frames)
        results["video file 360x640, every frame"] = measure(str(video), args.frames,
                                                             args.device)
    write_results(Path(args.out), args, results)


def write_results(out: Path, args, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    command = "python benchmarks/node_demo.py " + " ".join(sys.argv[1:])
    lines = [f"# Demo node, {args.device} ({device})", "",
             f"Command: `{command.strip()}`  ", f"Date: {time.strftime('%Y-%m-%d')}, "
             f"torch {torch.__version__}, model: bundled demo (LR-ASPP MobileNetV3, 192x352 "
             "input, masks at 360x640)", "",
             "| run | frames | out FPS | dropped | latency p50 ms | p99 ms | drivable IoU |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        iou = "" if r["demo_drivable_iou"] is None else f"{r['demo_drivable_iou']:.3f}"
        lines.append(f"| {name} | {r['published']} | {r['fps']:.1f} | {r['dropped']} | "
                     f"{r['latency_p50_ms']:.1f} | {r['latency_p99_ms']:.1f} | {iou} |")
    tag = "cpu" if args.device == "cpu" else "gpu"
    (out / f"{tag}-demo-node.md").write_text("\n".join(lines) + "\n")
    (out / f"{tag}-demo-node.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
