"""Every seed model trained from scratch on CamVid with the same CPU budget (issue 13).

    python benchmarks/seed_table.py --budget 900 --name camvid-seed-table \
        [--recipe train/camvid-lraspp-native.toml] [--models lraspp_mobilenet_v3 ...]

Each model gets the recipe unchanged but for [model] (native resolution, crops and
augmentation, OHEM, AdamW with a poly schedule) and as many optimizer steps as fit in
`--budget` seconds at its own step time, measured here first (median of `--timed` steps of
the recipe's batch and crop after three warm-up steps; `--retime MODEL` times one model
again, taking turns with those timed before, in their units, and trains it anew). All
models are timed before the first one trains, so start it on a quiet machine; the training
runs may then share the cores. So every schedule runs to its end and the budget is compute,
not wall time: the loader and the `--rounds` evaluation rounds come on top, and each
model's wall time is recorded beside it.
BF16 autocast only where the CPU has BF16 (elsewhere it is emulated and slower). The best
round of each run is then scored by `rtseg eval` (the node's preprocessing, full-size labels).

Writes results/NAME.json after every model (a rerun skips the models already there) and
results/NAME.md; checkpoints go to runs/seed-table/MODEL/best.pt. `--speed ENGINE` then
adds each trained model's FPS at its 352x480 input (`rtseg bench --engine ENGINE`: engine
only and through the node, 360x480 frames), once the machine is quiet, one model at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from train_speed import step_fn

from rtseg.backends.openvino_backend import openvino_machine
from rtseg.config import ModelConfig, load_train_config
from rtseg.models import build_model, count_parameters
from rtseg.training.losses import build_loss, with_boosters
from rtseg.training.run import fit_to_device

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = 11  # CamVid's SegNet split
# The seed models with the arguments their camvid-*.toml recipes give them.
SEEDS = {
    "lraspp_mobilenet_v3": {},
    "deeplabv3_mobilenet_v3": {},
    "unet": {"encoder": "resnet18"},
    "deeplabv3plus": {"encoder": "resnet18"},
    "bisenetv2": {"detail_channels": [32, 64], "head_channels": 256},
}


WARMUP_STEPS = 3  # oneDNN builds its kernels over the first steps; one was too few


def stepper(name: str, kwargs: dict, cfg):
    """A function doing one optimizer step of `name` on a (batch, 3, crop) batch, warmed up."""
    torch.manual_seed(0)
    h, w = cfg.augment.crop or (cfg.data.height, cfg.data.width)
    model = build_model(name, CLASSES, **kwargs).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = with_boosters(build_loss("ohem", 255, ohem_keep=cfg.train.ohem_keep), 1.0)
    x = torch.randn(cfg.train.batch_size, 3, h, w)
    y = torch.randint(0, CLASSES, (cfg.train.batch_size, h, w))
    mode = ("bf16+" if cfg.train.cpu_bf16 else "") + (
        "channels_last" if cfg.train.channels_last else "fp32")

    def step() -> float:
        t0 = time.perf_counter()
        step_fn(model, x, y, mode, optimizer, loss_fn)
        return time.perf_counter() - t0

    for _ in range(WARMUP_STEPS):
        step()
    return step


def step_seconds(name: str, kwargs: dict, cfg, timed: int) -> float:
    """Median seconds of one optimizer step of `name` on a (batch, 3, crop) batch."""
    step = stepper(name, kwargs, cfg)
    return statistics.median(step() for _ in range(timed))


def retime(name: str, result: dict, cfg, rounds: int) -> float:
    """`name`'s step time anew, in the table's units: `name` and every model timed before
    take turns (2 steps each, `rounds` rounds), and `name`'s median is scaled by theirs,
    step_s = median over them of table[ref] * now[name] / now[ref]. For a timing taken at a
    busy moment, without re-timing (and retraining) the models already in the table."""
    refs = [m for m in result["step_s"] if m != name]
    steps = {m: stepper(m, SEEDS[m], cfg) for m in [*refs, name]}
    times: dict[str, list[float]] = {m: [] for m in steps}
    for _ in range(rounds):
        for m, step in steps.items():
            times[m] += [step(), step()]
    now = {m: statistics.median(v) for m, v in times.items()}
    scaled = statistics.median(result["step_s"][r] * now[name] / now[r] for r in refs)
    result.setdefault("retimed", {})[name] = {
        "was_s": result["step_s"][name], "now_s": {m: round(v, 3) for m, v in now.items()},
        "step_s": round(scaled, 3), "rounds": rounds}
    result["step_s"][name] = scaled
    return scaled


def run_model(name: str, seconds: float, base, args) -> dict:
    """Train one seed model for the budget at `seconds` per step, score it -> its row."""
    kwargs = SEEDS[name]
    steps = max(args.rounds, round(args.budget / seconds))
    out = Path(args.runs) / name
    cfg = replace(
        base,
        model=ModelConfig(name=name, kwargs=kwargs),
        train=replace(base.train, steps=steps, epochs=0, eval_every=-(-steps // args.rounds),
                      patience=0, warmup_steps=min(base.train.warmup_steps, steps // 10)),
        output=replace(base.output, path=str(out / "best.pt"), logs=str(out)))
    resume = (out / "last.pt").is_file()  # a run cut off (a session's end) goes on
    print(f"{name}: {seconds:.2f} s/step -> {steps} steps"
          + (" (resumed from last.pt)" if resume else ""), flush=True)
    from rtseg.training.loop import train

    result = train(cfg, progress=False, resume=resume)
    score = json.loads(subprocess.run(
        [sys.executable, "-m", "rtseg", "eval", str(out / "best.pt"), "--data", "camvid",
         "--root", base.data.root, "--json"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    params = count_parameters(build_model(name, CLASSES, **kwargs))
    return {"model": name, "kwargs": kwargs, "params_m": round(params / 1e6, 2),
            "step_s": round(seconds, 3), "steps": steps,
            "images_seen": steps * base.train.batch_size, "best_step": result.best_step,
            "wall_s": None if resume else round(result.seconds),
            "loop_s": round(loop_seconds(out / "log.csv", base.train.batch_size)),
            "miou": score["miou"],
            "road": score["iou"]["Road"], "pixel_accuracy": score["pixel_accuracy"],
            "iou": score["iou"]}


def loop_seconds(log: Path, batch: int) -> float:
    """Seconds of optimizer steps and waits for data over all rounds of a run's log.csv,
    resumed parts included (evaluation excluded): images / rate, per round, both rates."""
    import csv

    total, last = 0.0, 0
    with log.open() as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            images = (step - last) * batch
            total += images / float(row["loader_img_s"]) + images / float(row["step_img_s"])
            last = step
    return total


def add_speed(result: dict, args) -> None:
    """Engine-only and node FPS of every trained model of `result` with `args.speed`."""
    for row in result["rows"]:
        ckpt = Path(args.runs) / row["model"] / "best.pt"
        proc = subprocess.run(
            [sys.executable, "-m", "rtseg", "bench", "--model", str(ckpt), "--engine",
             args.speed, "--height", "352", "--width", "480", "--frame-size", "360x480",
             "--seconds", str(args.seconds), "--no-baseline", "--json"],
            check=True, capture_output=True, text=True)
        bench = json.loads(proc.stdout.strip().splitlines()[-1])
        row["speed"] = {"engine": args.speed, "checkpoint": str(ckpt),
                        "engine_file": bench["engine_file"],
                        "engine_fps": bench["engine"]["fps"],
                        "pipeline_fps": bench["pipeline"]["fps"]}
        print(row["model"], row["speed"], flush=True)


def to_markdown(result: dict) -> str:
    """The table, best val mIoU first."""
    rows = sorted(result["rows"], key=lambda r: -r["miou"])
    speed = all("speed" in r for r in rows) and rows
    lines = [f"# {result['name']}: every seed model, {result['budget_s']} s of training "
             "steps each, CamVid val", "", f"`{result['command']}`  ",
             f"{result['cpu']}, {result['threads']} threads, torch {result['torch']}, "
             f"BF16 autocast: {result['bf16']}; recipe {result['recipe']} with [model] "
             "changed; scored by `rtseg eval --data camvid` (101 val frames). Loop s: "
             "optimizer steps plus waits for data over all rounds (log.csv, resumed parts "
             "included); wall s: the whole run, evaluations included, where it ran in one "
             "go.", "",
             "| model | params (M) | s/step | steps (images) | loop s / wall s | val mIoU "
             "| Road IoU | pixel acc. |" + (" FPS engine / node |" if speed else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if speed else "")]
    for r in rows:
        fps = speed and f" {r['speed']['engine_fps']:.1f} / {r['speed']['pipeline_fps']:.1f} |"
        lines.append(f"| {r['model']} | {r['params_m']} | {r['step_s']} | {r['steps']} "
                     f"({r['images_seen']}) | {r.get('loop_s', '-')} / {r['wall_s'] or 'resumed'} "
                     f"| {100 * r['miou']:.2f} "
                     f"| {100 * r['road']:.2f} | {100 * r['pixel_accuracy']:.2f} |"
                     + (fps or ""))
    for name, r in result.get("retimed", {}).items():
        others = ", ".join(f"{m} {v}" for m, v in r["now_s"].items() if m != name)
        lines += ["", f"{name} re-timed (`{r['command']}`): its first timing, "
                  f"{r['was_s']:.3f} s/step, was off; timed again taking turns with the "
                  f"others ({r['now_s'][name]} s/step against {others}), {r['step_s']} s/step "
                  "in the table's units (median of table / now over the others)."]
    if speed:
        runs = Path(rows[0]["speed"]["checkpoint"]).parent.parent
        lines += ["", f"FPS: `rtseg bench --model {runs}/MODEL/best.pt --engine "
                  f"{rows[0]['speed']['engine']} --height 352 --width 480 --frame-size 360x480 "
                  "--no-baseline`, one model at a time on the quiet machine."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="camvid-seed-table")
    parser.add_argument("--budget", type=float, default=900.0,
                        help="seconds of training steps per model")
    parser.add_argument("--recipe", default="train/camvid-lraspp-native.toml")
    parser.add_argument("--models", nargs="+", default=list(SEEDS), choices=list(SEEDS))
    parser.add_argument("--rounds", type=int, default=2, help="evaluation rounds per run")
    parser.add_argument("--timed", type=int, default=3, help="timed steps per model")
    parser.add_argument("--runs", default="runs/seed-table")
    parser.add_argument("--speed", metavar="ENGINE",
                        help="only add the FPS of the trained models with this engine")
    parser.add_argument("--seconds", type=float, default=10.0, help="--speed bench seconds")
    parser.add_argument("--retime", metavar="MODEL", choices=list(SEEDS),
                        help="time MODEL's step again against the models timed before "
                        "(its first timing was off) and train it to that budget")
    args = parser.parse_args(argv)
    base = load_train_config(args.recipe)
    base = fit_to_device(base, torch.device("cpu"))  # the step timing runs what training will
    bf16 = base.train.cpu_bf16
    path = RESULTS / f"{args.name}.json"
    result = json.loads(path.read_text()) if path.is_file() else {
        "name": args.name, "command": "python " + " ".join(sys.argv), "budget_s": args.budget,
        "recipe": args.recipe, "cpu": openvino_machine()["name"],
        "threads": torch.get_num_threads(), "torch": torch.__version__, "bf16": bf16,
        "rows": []}
    if args.speed:
        add_speed(result, args)
        path.write_text(json.dumps(result, indent=1) + "\n")
        path.with_suffix(".md").write_text(to_markdown(result))
        return 0
    if args.retime:
        was = result["step_s"][args.retime]
        now = retime(args.retime, result, base, 3)
        result["retimed"][args.retime]["command"] = "python " + " ".join(sys.argv)
        print(f"{args.retime}: {now:.2f} s/step in the table's units, was {was:.2f}",
              flush=True)
        result["rows"] = [r for r in result["rows"] if r["model"] != args.retime]
        path.write_text(json.dumps(result, indent=1) + "\n")
    done = {r["model"] for r in result["rows"]}
    todo = [m for m in args.models if m not in done]
    timed = result.setdefault("step_s", {})
    for name in (m for m in todo if m not in timed):  # all timed first, on a quiet machine
        timed[name] = step_seconds(name, SEEDS[name], base, args.timed)
        print(f"{name}: {timed[name]:.2f} s/step", flush=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
    for name in todo:
        result["rows"].append(run_model(name, timed[name], base, args))
        path.write_text(json.dumps(result, indent=1) + "\n")
        path.with_suffix(".md").write_text(to_markdown(result))
        print(json.dumps(result["rows"][-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
