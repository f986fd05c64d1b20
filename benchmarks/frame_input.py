"""Where the node normalises frames: on its own thread, or inside the engine, in one run.

    python benchmarks/frame_input.py NAME --model ENGINE_OR_CKPT [--frame-size 1080x1920]
        [--seconds 60] [--rounds 6] [--engine openvino] [--height 512 --width 1024]

For an engine with `fused_preprocess` (OpenVINO). Rounds alternate four phases: the engine
alone on a ready normalised float batch (`classes()`), the engine alone on ready uint8
frames (`frames_to_classes()`, the normalisation inside), the node normalising on its own
thread (host: `Preprocessor`, then `classes()`), the node handing uint8 frames to the
engine (engine: what `rtseg run` does). Each node phase is `rtseg bench`'s pipeline phase
(in-memory frames, real PUB socket, a subscriber process). Drift of the machine's speed
then touches every column alike. `--frames DIR` also compares the class maps of both
ways on those images (resized to the input size), and `--seconds 0` does only that.
Writes results/NAME.json and results/NAME.md.
"""

from __future__ import annotations

import sys

from record_bench import node_config, node_parser, save_result  # noqa: I001 (benchmarks/ is sys.path[0])

from rtseg.bench import (
    bench_engine,
    bench_pipeline,
    describe_device,
    engine_model,
    open_backend,
    summarise_calls,
    summarise_pipeline,
)
from rtseg.config import BenchConfig
from rtseg.device import pick_device
from rtseg.stream.memory import memory_frames

SIDES = ("host", "engine")  # where the frames are normalised


def agreement(backend, folder: str) -> dict:
    """Class maps of the images in `folder` (resized to the input size), normalised on the
    host (`Preprocessor` + `classes()`) and in the engine (`frames_to_classes()`): the
    fraction of equal pixels, mean and lowest over the images."""
    import cv2
    import numpy as np

    from rtseg.backends.preprocess import Preprocessor, frames_batch
    from rtseg.export.parity import calib_images

    size = backend.spec.input_size
    prepare = Preprocessor(size, backend.spec.mean, backend.spec.std)
    equal = []
    for path in calib_images(folder, 10**6):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        host = backend.classes(prepare(image))
        inside = backend.frames_to_classes(frames_batch([image], size))
        equal.append(float((host == inside).float().mean()))
    return {"folder": folder, "images": len(equal), "equal_mean": float(np.mean(equal)),
            "equal_min": float(np.min(equal))}


def measure(cfg: BenchConfig, folder: str | None = None, speed: bool = True) -> dict:
    """Engine-only FPS on both inputs and the node's figures for both sides, in rounds;
    the agreement of both ways on the images of `folder`."""
    dev = pick_device(cfg.device)
    model = engine_model(cfg, dev, 1)
    runs: dict[str, list] = {f"{kind}_{side}": [] for kind in ("engine", "node")
                             for side in SIDES}
    share = cfg.seconds / cfg.rounds
    rounds = cfg.rounds if speed else 0
    with open_backend(model, dev, (cfg.height, cfg.width)) as backend:
        if not type(backend).fused_preprocess:
            sys.exit(f"{model}: its backend cannot take uint8 frames; nothing to compare")
        frame_size = cfg.frame_size or backend.spec.input_size
        frames = memory_frames(tuple(frame_size))
        same = agreement(backend, folder) if folder else None
        for round_ in range(rounds):
            warmup = cfg.warmup_s if round_ == 0 else 0.0
            for side in SIDES:
                backend.fused_preprocess = side == "engine"  # what Pipeline and bench read
                runs[f"engine_{side}"].append(bench_engine(backend, 1, share, warmup))
                runs[f"node_{side}"].append(bench_pipeline(cfg, backend, dev, frames, 1,
                                                           share))
        name, size = backend.spec.name, backend.spec.input_size
    result = {"model": name, "engine_file": model, "device": describe_device(dev),
              "input_size": list(size), "frame_size": list(frame_size), "agreement": same}
    if not rounds:
        return result
    for side in SIDES:
        engine = result[f"engine_{side}"] = summarise_calls(*runs[f"engine_{side}"])
        node = result[f"node_{side}"] = summarise_pipeline(runs[f"node_{side}"])
        node["vs_engine"] = node["fps"] / engine["fps"]
    result["node_engine_vs_host"] = result["node_engine"]["fps"] / result["node_host"]["fps"]
    return result


def table(result: dict) -> str:
    """The result as aligned lines."""
    lines = [f"{result['model']} on {result['device']}, frames {result['frame_size'][0]}x"
             f"{result['frame_size'][1]}, input {result['input_size'][0]}x"
             f"{result['input_size'][1]}"]
    same = result["agreement"]
    if same:
        lines.append(f"class maps equal, host vs engine normalisation, {same['images']} "
                     f"images of {same['folder']}: mean {100 * same['equal_mean']:.3f} %, "
                     f"lowest {100 * same['equal_min']:.3f} %")
    if "engine_host" not in result:
        return "\n".join(lines)
    lines += [f"{'normalised on':<22}{'fps':>8}{'p50 ms':>9}{'p99 ms':>9}{'x engine':>10}"
             "  stages, mean ms"]
    for side in SIDES:
        eng, node = result[f"engine_{side}"], result[f"node_{side}"]
        lines.append(f"{'engine alone, ' + side:<22}{eng['fps']:>8.1f}{eng['p50_ms']:>9.2f}"
                     f"{eng['p99_ms']:>9.2f}")
        stages = " ".join(f"{k} {v['mean']:.2f}" for k, v in node["stages_ms"].items())
        lines.append(f"{'node, ' + side:<22}{node['fps']:>8.1f}{node['p50_ms']:>9.2f}"
                     f"{node['p99_ms']:>9.2f}{node['vs_engine']:>10.2f}  {stages}")
    lines.append(f"node FPS, engine / host: {result['node_engine_vs_host']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = node_parser(__doc__.splitlines()[0], engine="openvino", seconds=60.0, rounds=6)
    parser.add_argument("--frames", default=None, help="folder of images: also compare the "
                        "class maps of both ways on them")
    args = parser.parse_args()
    cfg = node_config(args, seconds=args.seconds or 1.0)  # 0: only the class maps
    result = measure(cfg, args.frames, speed=args.seconds > 0)
    save_result(args.out, args.name, result, "frame_input.py", table(result))


if __name__ == "__main__":
    main()
