"""Training-step speed on this machine: images/s of one optimizer step (forward, loss,
backward, AdamW) per model and numeric mode, and of the CamVid training loader.

    python benchmarks/train_speed.py --out benchmarks/results/cpu-train-speed \
        [--models bisenetv2 lraspp_mobilenet_v3 ...] [--height 352 --width 480 --batch 8]

Modes: fp32 (NCHW), channels_last, bf16 (torch.autocast on the CPU), bf16+channels_last,
compiled+channels_last (the model under `torch.compile`, Inductor's C++ kernels; its
compilation, minutes on 2 cores, is left out of the timing by the warm-up step).
The modes of one model take turns in `--rounds` rounds (median step time over all rounds),
so the machine's drift hits them alike; compare modes within a model, and models with care.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from rtseg.models import build_model, count_parameters
from rtseg.training.losses import build_loss, with_boosters

MODES = ("fp32", "channels_last", "bf16", "bf16+channels_last", "compiled+channels_last")


def step_fn(model, batch, target, mode: str, optimizer, loss_fn):
    """One training step of `model` on batch (N, 3, H, W) in `mode`."""
    last = "channels_last" in mode
    x = batch.contiguous(memory_format=torch.channels_last) if last else batch
    model.to(memory_format=torch.channels_last if last else torch.contiguous_format)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.startswith("bf16")):
        out = model(x)
    loss = loss_fn(out, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def time_model(name: str, args) -> dict:
    """Median seconds per step for each mode, the modes alternating in rounds."""
    torch.manual_seed(0)
    model = build_model(name, args.classes).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = with_boosters(build_loss("ce", 255), 1.0)
    x = torch.randn(args.batch, 3, args.height, args.width)
    y = torch.randint(0, args.classes, (args.batch, args.height, args.width))
    times = {m: [] for m in args.modes}
    compiled = torch.compile(model) if any(m.startswith("compiled") for m in args.modes) else None
    runs = {m: compiled if m.startswith("compiled") else model for m in args.modes}
    for mode in args.modes:  # warm-up (and compilation): one step per mode
        step_fn(runs[mode], x, y, mode, optimizer, loss_fn)
    for _ in range(args.rounds):
        for mode in args.modes:
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step_fn(runs[mode], x, y, mode, optimizer, loss_fn)
                times[mode].append(time.perf_counter() - t0)
    row = {"model": name, "params_m": round(count_parameters(model) / 1e6, 2)}
    for mode in args.modes:
        row[mode] = round(args.batch / statistics.median(times[mode]), 2)
    return row


def loader_speed(root: str, args) -> float | None:
    """Images/s of the CamVid training loader (decode + augmentation) in one process."""
    if not Path(root).is_dir():
        return None
    from rtseg.config import AugmentConfig, DataConfig
    from rtseg.data.datasets import open_data
    from rtseg.data.transforms import PairDataset, train_transform

    train = open_data(DataConfig(kind="camvid", root=root, height=args.height,
                                 width=args.width), "train")
    aug = AugmentConfig(scale=(0.5, 2.0), rotate=10.0, brightness=0.4, contrast=0.4,
                        saturation=0.4, hue=0.05, blur=0.2, noise=0.02)
    data = PairDataset(train, train_transform(aug, (args.height, args.width), train.info.mean,
                                              train.info.std, train.info.ignore_index))
    count = 48
    t0 = time.perf_counter()
    for i in range(count):
        data[i]
    return round(count / (time.perf_counter() - t0), 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bisenetv2", "lraspp_mobilenet_v3",
                                                         "deeplabv3_mobilenet_v3", "unet",
                                                         "deeplabv3plus"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--height", type=int, default=352)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per mode and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", default="../shared/data/camvid")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        rows.append(time_model(name, args))
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": "python " + " ".join(sys.argv), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "input": [args.height, args.width],
              "batch": args.batch, "rows": rows, "loader_img_s": loader_speed(args.root, args)}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
        Path(args.out + ".md").write_text(to_markdown(result, args.modes))
    return 0


def to_markdown(result: dict, modes) -> str:
    """The rows as a table of training images/s."""
    lines = [f"# Training-step speed, images/s ({result['input'][0]}x{result['input'][1]}, "
             f"batch {result['batch']}, {result['threads']} threads, torch {result['torch']})",
             "", f"`{result['command']}`", "",
             "| model | params (M) | " + " | ".join(modes) + " |",
             "|---|---|" + "---|" * len(modes)]
    for row in result["rows"]:
        lines.append(f"| {row['model']} | {row['params_m']} | "
                     + " | ".join(str(row[m]) for m in modes) + " |")
    lines += ["", f"CamVid training loader (decode + augmentation, one process): "
              f"{result['loader_img_s']} images/s", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
