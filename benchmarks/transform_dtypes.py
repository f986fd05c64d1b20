"""Why rtseg.data.transforms runs geometric ops on uint8 and colour ops on float32.

    python benchmarks/transform_dtypes.py [--out benchmarks/results] [--reps 50]

On one thread, at the CamVid recipes' crop (352x480): the antialiased bilinear resize of an
(3, H, W) image laid out channels-last (as it comes from numpy), and torchvision's
brightness / contrast / saturation, each on uint8 and on float32 in [0, 1]. Median of
`reps` calls, on the CPU. Writes results/cpu-transform-dtypes.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torchvision
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

HERE = Path(__file__).resolve().parent
SIZE = (352, 480)


def median_ms(fn, x: torch.Tensor, reps: int) -> float:
    fn(x)  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(reps: int) -> list[dict]:
    rng = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (*SIZE, 3), dtype=torch.uint8, generator=rng)
    u8 = image.permute(2, 0, 1)  # channels-last memory, as from torch.from_numpy
    f32 = F.to_dtype(u8, torch.float32, scale=True)
    up = [round(SIZE[0] * 1.25), round(SIZE[1] * 1.25)]
    ops = {
        "resize x1.25 (bilinear, antialias)": lambda x: F.resize(
            x, up, interpolation=InterpolationMode.BILINEAR, antialias=True),
        "brightness 1.2": lambda x: F.adjust_brightness(x, 1.2),
        "contrast 1.2": lambda x: F.adjust_contrast(x, 1.2),
        "saturation 1.2": lambda x: F.adjust_saturation(x, 1.2),
    }
    rows = []
    for name, op in ops.items():
        a, b = median_ms(op, u8, reps), median_ms(op, f32, reps)
        rows.append({"op": name, "uint8_ms": round(a, 3), "float32_ms": round(b, 3),
                     "float32_over_uint8": round(b / a, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = measure(args.reps)
    result = {"command": f"python benchmarks/transform_dtypes.py --reps {args.reps}",
              "date": datetime.date.today().isoformat(), "size": list(SIZE), "threads": 1,
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "torchvision": torchvision.__version__, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "cpu-transform-dtypes"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# uint8 vs float32 in the training transforms ({SIZE[0]}x{SIZE[1]}, 1 thread)",
             "", f"`{result['command']}` ({result['date']}, torch {torch.__version__}, "
             f"torchvision {torchvision.__version__}); median ms per call", "",
             "| op | uint8 | float32 | float32 / uint8 |", "|---|---|---|---|"]
    lines += [f"| {r['op']} | {r['uint8_ms']} | {r['float32_ms']} | {r['float32_over_uint8']} |"
              for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
