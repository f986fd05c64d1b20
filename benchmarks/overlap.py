"""The host node's overlap modes, beside the engine alone, in one run.

    python benchmarks/overlap.py NAME --model ENGINE_OR_CKPT [--frame-size 1080x1920]
        [--seconds 30] [--rounds 3] [--engine auto] [--height 512 --width 1024]

Rounds alternate: the engine alone on a ready input (as `rtseg bench`'s engine phase), the
node with `--overlap on` (a batch published while the next one infers), the node with
`--overlap off` (one batch at a time); each node phase is `rtseg bench`'s pipeline phase
(in-memory frames, real PUB socket, a subscriber process). Drift of the machine's speed
then touches every column alike. Writes results/NAME.json and results/NAME.md.
"""

from __future__ import annotations

from dataclasses import replace

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

MODES = ("on", "off")


def measure(cfg: BenchConfig) -> dict:
    """Engine-only FPS and the node's figures with overlap on and off, in rounds."""
    dev = pick_device(cfg.device)
    model = engine_model(cfg, dev, 1)
    runs: dict[str, list] = {"engine": [], **{mode: [] for mode in MODES}}
    share = cfg.seconds / cfg.rounds
    with open_backend(model, dev, (cfg.height, cfg.width)) as backend:
        frame_size = cfg.frame_size or backend.spec.input_size
        frames = memory_frames(tuple(frame_size))
        for round_ in range(cfg.rounds):
            warmup = cfg.warmup_s if round_ == 0 else 0.0
            runs["engine"].append(bench_engine(backend, 1, share, warmup))
            for mode in MODES:
                runs[mode].append(bench_pipeline(replace(cfg, overlap=mode), backend, dev,
                                                 frames, 1, share))
        name, size = backend.spec.name, backend.spec.input_size
        threads = backend.runtime_info.get("threads", "all")
    engine = summarise_calls(*runs["engine"])
    result = {"model": name, "engine_file": model, "device": describe_device(dev),
              "engine_threads": threads,
              "input_size": list(size),
              "frame_size": list(frame_size), "engine": engine}
    for mode in MODES:
        result[f"overlap_{mode}"] = summarise_pipeline(runs[mode])
        result[f"overlap_{mode}"]["vs_engine"] = result[f"overlap_{mode}"]["fps"] / engine["fps"]
    result["off_vs_on"] = result["overlap_off"]["fps"] / result["overlap_on"]["fps"]
    return result


def table(result: dict) -> str:
    """The result as aligned lines."""
    eng = result["engine"]
    lines = [f"{result['model']} on {result['device']} (engine threads "
             f"{result['engine_threads']}), frames {result['frame_size'][0]}x"
             f"{result['frame_size'][1]}",
             f"{'':<16}{'fps':>8}{'x engine':>10}{'p50 ms':>9}{'p99 ms':>9}  stages, mean ms",
             f"{'engine':<16}{eng['fps']:>8.1f}{1:>10.2f}{eng['p50_ms']:>9.2f}"
             f"{eng['p99_ms']:>9.2f}"]
    for mode in MODES:
        r = result[f"overlap_{mode}"]
        stages = " ".join(f"{k} {v['mean']:.1f}" for k, v in r["stages_ms"].items())
        lines.append(f"{'overlap ' + mode:<16}{r['fps']:>8.1f}{r['vs_engine']:>10.2f}"
                     f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}  {stages}")
    lines.append(f"overlap off / on: {result['off_vs_on']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = node_parser(__doc__.splitlines()[0], engine="auto", seconds=30.0, rounds=3)
    parser.add_argument("--calib", default=None, help="real frames for a cache-compiled "
                        "engine's parity gate")
    args = parser.parse_args()
    result = measure(node_config(args, calib=args.calib))
    save_result(args.out, args.name, result, "overlap.py", table(result))


if __name__ == "__main__":
    main()
