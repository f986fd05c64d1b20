"""Where a large frame is shrunk to the network's size: on the node's thread, or inside
the OpenVINO engine, in one run.

    python benchmarks/engine_resize.py NAME --engine MANIFEST [--frame-size 1080x1920]
        [--frames DIR] [--rounds 6] [--calls 40]

MANIFEST: an OpenVINO engine (`rtseg compile CKPT --format openvino --height 512 --width
1024`). Two ways, taking turns each round: `host` (what `rtseg run` does: cv2.resize,
bilinear, on one thread, then the engine's uint8-frame graph: PrePostProcessor
normalisation in front, argmax behind) and `engine` (the same graph with a
PrePostProcessor bilinear resize in front too, taking the full frame: input of dynamic
height and width). Per frame: wall ms and CPU ms of the process (user + system, both
cores), medians over rounds; and how many pixels of the two ways' class maps are equal.
Frames: the images in `--frames` (e.g. CamVid val) scaled to `--frame-size`, else the
demo generator's scenes. Writes results/NAME.json and results/NAME.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from record_bench import save_result  # noqa: I001 (benchmarks/ is sys.path[0])

from rtseg.backends.openvino_backend import ov_core, with_argmax, with_frame_input
from rtseg.config import parse_size
from rtseg.manifest import engine_path, read_manifest

WAYS = ("host", "engine")


def with_resize(model):
    """`model`, which takes (1, H, W, 3) uint8 frames of the network's size (the node's
    frame graph: `with_frame_input`), taking them of any size instead, shrunk bilinearly
    by OpenVINO before anything else."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor, ResizeAlgorithm

    ppp = PrePostProcessor(model)
    frame = ppp.input()
    frame.tensor().set_spatial_dynamic_shape()
    frame.model().set_layout(ov.Layout("NHWC"))
    frame.preprocess().resize(ResizeAlgorithm.RESIZE_LINEAR)
    return ppp.build()


def load_frames(folder: str | None, size: tuple[int, int], count: int = 20) -> list:
    """`count` frames (H, W, 3) uint8 BGR of `size`: images of `folder`, else demo scenes."""
    if folder:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg"))
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths[:count]]
    else:
        from rtseg.data.synthetic import SceneStream

        scenes = SceneStream(seed=0, height=size[0], width=size[1])
        images = [cv2.cvtColor(scenes.next()[0], cv2.COLOR_RGB2BGR) for _ in range(count)]
    return [cv2.resize(im, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for im in images]


def runners(manifest_path: str):
    """{way: frame (H', W', 3) uint8 -> class map (h, w) uint8} and the network's (h, w)."""
    manifest = read_manifest(manifest_path)
    core, xml = ov_core(), str(engine_path(Path(manifest_path), manifest))
    mean, std = manifest.mean, manifest.std
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT":
              manifest.runtime.get("inference_precision_hint", "f32")}
    def frames():  # a fresh graph each time: the PrePostProcessor edits the one it is given
        return with_frame_input(with_argmax(core.read_model(xml)), mean, std)

    host = core.compile_model(frames(), "CPU", config).create_infer_request()
    inside = core.compile_model(with_resize(frames()), "CPU", config).create_infer_request()
    _, _, h, w = manifest.inputs[0].shape

    def on_host(frame):
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        return host.infer({0: small[None]}, share_inputs=True)[0][0].copy()

    def in_engine(frame):
        return inside.infer({0: frame[None]}, share_inputs=True)[0][0].copy()

    return {"host": on_host, "engine": in_engine}, (h, w)


def cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--engine", required=True, help="OpenVINO engine manifest")
    parser.add_argument("--frame-size", default="1080x1920")
    parser.add_argument("--frames", help="folder of images (default: demo scenes)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # as the node: OpenCV on one thread, the cores to the engine
    size = parse_size(args.frame_size)
    frames = load_frames(args.frames, size)
    run, net = runners(args.engine)
    equal = [float(np.mean(run["host"](f) == run["engine"](f))) for f in frames]
    wall = {way: [] for way in WAYS}
    cpu = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            t0, c0 = time.perf_counter(), cpu_s()
            for i in range(args.calls):
                run[way](frames[i % len(frames)])
            wall[way].append((time.perf_counter() - t0) / args.calls * 1e3)
            cpu[way].append((cpu_s() - c0) / args.calls * 1e3)
    result = {"engine": args.engine, "frame_size": list(size), "network": list(net),
              "frames": args.frames or "demo", "equal_mean": float(np.mean(equal)),
              "equal_min": float(np.min(equal)), "wall_ms": wall, "cpu_ms": cpu}
    lines = [f"frames {size[0]}x{size[1]} ({result['frames']}) -> network {net[0]}x{net[1]}",
             "| resize | wall ms/frame, median (per round) | CPU ms/frame, median |",
             "|---|---|---|"]
    for way in WAYS:
        rounds = " ".join(f"{v:.1f}" for v in wall[way])
        lines.append(f"| {way} | {np.median(wall[way]):.1f} ({rounds}) | "
                     f"{np.median(cpu[way]):.1f} |")
    lines.append(f"class maps equal: {100 * result['equal_mean']:.3f} % of pixels "
                 f"(lowest frame {100 * result['equal_min']:.3f} %)")
    save_result(args.out, args.name, result, "engine_resize.py", "\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
