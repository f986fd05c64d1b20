"""What a drivable mask's occupancy grid costs (rtseg.ground + rtseg.ros2msg).

    python benchmarks/ground_cost.py [--reps 300]

Per mask size, the demo camera's grid (launch/cameras/demo.toml: 160 x 200 cells of
0.2 m): ms to sample the mask into the grid (`GroundGrid.occupancy`, after the first call
built the lookup tables), ms to encode it as a CDR nav_msgs/OccupancyGrid (rtseg's
encoder, and mcap_ros2's element by element, which it replaces), ms to turn the grid into
the camera's laser scan (rtseg.free_space: 139 beams every 0.5 deg), and the tables' first
build. Median of `--reps`. Writes results/cpu-ground-cost.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
from encode_speed import cpu_name, save  # noqa: I001 (benchmarks/ is sys.path[0])

from rtseg.camera_file import load_ground
from rtseg.free_space import default_scan, scan_ranges
from rtseg.ground import GroundGrid, _maps
from rtseg.protocol import MaskHeader
from rtseg.ros2msg import MSGDEFS, OCCUPANCY_TYPE, encoders, grid_to_ros

HERE = Path(__file__).resolve().parent
SIZES = ((360, 640), (512, 1024), (1080, 1920))


def median_ms(fn, arg, reps: int, *more) -> float:
    """Median milliseconds of `fn(arg, *more)` over `reps` calls."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(arg, *more)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(reps: int) -> list[dict]:
    from mcap_ros2._dynamic import serialize_dynamic

    camera = load_ground(HERE.parent / "launch" / "cameras" / "demo.toml")
    ours = encoders()[OCCUPANCY_TYPE]
    theirs = serialize_dynamic(OCCUPANCY_TYPE, MSGDEFS[OCCUPANCY_TYPE])[OCCUPANCY_TYPE]
    rng, rows = np.random.default_rng(0), []
    for height, width in SIZES:
        mask = (rng.random((height, width)) < 0.5).astype(np.uint8)
        ground = GroundGrid(camera.camera, camera.grid)
        start = time.perf_counter()
        _maps.__wrapped__(ground.camera, ground.grid, height, width)  # the build, uncached
        build_ms = (time.perf_counter() - start) * 1e3
        header = MaskHeader(topic="cam/drivable", v=1, kind="drivable", seq=0,
                            stamp_ns=time.time_ns(),
                            frame_id="cam", width=width, height=height, encoding="mono8",
                            classes=("not_drivable", "drivable"), model="bench")
        occupancy = ground.occupancy(mask)
        message = grid_to_ros(header, ground.grid, occupancy)
        listed = {**message, "data": occupancy.ravel().tolist()}
        assert ours(message) == theirs(listed)  # the same bytes, only faster
        rows.append({"size": f"{height}x{width}", "cells": list(occupancy.shape),
                     "tables_ms": round(build_ms, 2),
                     "occupancy_ms": round(median_ms(ground.occupancy, mask, reps), 3),
                     "encode_ms": round(median_ms(ours, message, reps), 3),
                     "scan_ms": round(median_ms(partial(scan_ranges, camera.grid),
                                                occupancy, reps, default_scan(camera)), 3),
                     "mcap_ros2_encode_ms": round(median_ms(theirs, listed, 5), 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--reps", type=int, default=300)
    args = parser.parse_args()
    rows = measure(args.reps)
    command = f"python benchmarks/ground_cost.py --reps {args.reps}"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")
    result = {"command": command, "date": date, "cpu": cpu_name(), "rows": rows}
    lines = [f"# A drivable mask as an occupancy grid\n\nCommand: `{command}`  \nRecorded {date}; "
             f"{result['cpu']}; the demo camera's grid (launch/cameras/demo.toml), medians; "
             "both encoders give the same bytes (checked).\n",
             "| mask | grid cells | lookup tables, once ms | mask -> grid ms | grid -> CDR ms | "
             "mcap_ros2's encoder ms | grid -> scan ms |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['cells'][0]} x {r['cells'][1]} | {r['tables_ms']:.2f} | "
              f"{r['occupancy_ms']:.3f} | {r['encode_ms']:.3f} | {r['mcap_ros2_encode_ms']:.2f} | "
              f"{r['scan_ms']:.3f} |"
              for r in rows]
    save(args.out, "cpu-ground-cost", result, lines)


if __name__ == "__main__":
    main()
