"""The free space ahead as a laser scan: what a 2D planner reads from the grid (rtseg.ground).

Nav2's obstacle layer, slam and most 2D planners take ``sensor_msgs/LaserScan``. From the
occupancy grid of a drivable mask, each beam (bearing in the grid's frame, 0 = ahead along
x, + = left, REP 103) runs from the frame's origin outwards and returns, in the manner of
REP 117:

- the distance to the first occupied cell (the edge of the drivable area, a car's foot);
- ``+inf`` when the beam stays on free cells up to ``range_max`` (no return in range);
  `default_scan`'s range_max is where the first beam leaves the grid, so every beam has
  the grid under it that far;
- ``nan`` when, before any occupied cell, it reaches ground the camera does not see (out
  of its field of view): nothing is known there, so the beam neither marks nor clears.

Cells the beam crosses before the first seen cell (the ground under the bonnet, which no
camera sees) are skipped. Distances come from the beam's samples, every half cell: they
are good to about a cell. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rtseg.ground import OCCUPIED, UNKNOWN, GridSpec, GroundGrid

DEFAULT_INCREMENT_DEG = 0.5


@dataclass(frozen=True)
class ScanSpec:
    """Beams from `angle_min` to `angle_max` (radians, + left) every `angle_increment`,
    out to `range_max` metres."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_max: float

    @property
    def angles(self) -> np.ndarray:
        """(beams,) float64 radians."""
        count = int(round((self.angle_max - self.angle_min) / self.angle_increment)) + 1
        return self.angle_min + np.arange(count) * self.angle_increment


@lru_cache(maxsize=16)
def default_scan(ground: GroundGrid, increment_deg: float = DEFAULT_INCREMENT_DEG) -> ScanSpec:
    """Beams across the camera's horizontal field of view (Camera.horizontal_field: left
    and right of its principal point, around its yaw), out to where the first of them
    leaves the grid."""
    cam, grid = ground.camera, ground.grid
    right, left = cam.horizontal_field()
    yaw, step = math.radians(cam.yaw_deg), math.radians(increment_deg)
    low, high = yaw - math.ceil(right / step) * step, yaw + math.ceil(left / step) * step
    angles = ScanSpec(low, high, step, 0.0).angles
    return ScanSpec(low, high, step, float(min(_exit(grid, a) for a in angles)))


def surround_scan(grounds: Sequence[GroundGrid],
                  increment_deg: float = DEFAULT_INCREMENT_DEG) -> ScanSpec:
    """Beams all round, from -pi up to pi less one increment, for several cameras' fused
    grid (rtseg.grid_fusion; one GridSpec for all): out to where the first beam inside
    some camera's horizontal field leaves the grid. A beam no camera sees returns nan."""
    step = math.radians(increment_deg)
    last = -math.pi + (int(round(2 * math.pi / step)) - 1) * step
    fields = [default_scan(ground, increment_deg) for ground in grounds]
    covered = [a for a in ScanSpec(-math.pi, last, step, 0.0).angles
               if any((a - f.angle_min) % (2 * math.pi) <= f.angle_max - f.angle_min + 1e-9
                      for f in fields)]
    return ScanSpec(-math.pi, last, step, float(min(_exit(grounds[0].grid, a) for a in covered)))


def _exit(grid: GridSpec, angle: float) -> float:
    """How far a beam from the origin at `angle` runs before it leaves the grid."""
    c, s = math.cos(angle), math.sin(angle)
    limits = [grid.x_max / c if c > 1e-12 else math.inf, grid.x_min / c if c < -1e-12
              else math.inf, grid.y_max / s if s > 1e-12 else math.inf,
              grid.y_min / s if s < -1e-12 else math.inf]
    return max(0.0, min(t for t in limits if t > 0))


def scan_ranges(grid: GridSpec, occupancy: np.ndarray, spec: ScanSpec,
                lethal: int = OCCUPIED) -> np.ndarray:
    """`occupancy` (rows, cols) int8 of `grid` -> (beams,) float32 ranges in metres, +inf
    or nan as the module docstring says; a cell stops a beam from a cost of `lethal` (a
    cost grid's cheaper cells are crossed, as free ones)."""
    rows, cols, steps = _beam_cells(grid, spec)
    inside = (rows >= 0) & (rows < occupancy.shape[0]) & (cols >= 0) & (cols < occupancy.shape[1])
    cells = np.full(rows.shape, UNKNOWN, np.int8)
    cells[inside] = occupancy[rows[inside], cols[inside]]
    seen = cells != UNKNOWN
    started = np.maximum.accumulate(seen, axis=1)  # from the first seen cell on
    stop = started & ((cells >= lethal) | (cells == UNKNOWN))  # an obstacle, or unseen
    hit = stop.any(axis=1)
    first = np.argmax(stop, axis=1)
    ranges = np.where(hit, steps[first], np.inf).astype(np.float32)
    beams = np.arange(len(ranges))
    ranges[hit & (cells[beams, first] == UNKNOWN)] = np.nan
    ranges[~seen.any(axis=1)] = np.nan
    return ranges


@lru_cache(maxsize=8)
def _beam_cells(grid: GridSpec, spec: ScanSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column (beams, samples) int of each beam's samples, every half cell from
    the origin to just short of range_max; (samples,) their distances."""
    steps = np.arange(0.0, spec.range_max, grid.resolution / 2)
    angles = spec.angles[:, None]
    x, y = np.cos(angles) * steps, np.sin(angles) * steps
    cols = np.floor((x - grid.x_min) / grid.resolution).astype(np.int64)
    rows = np.floor((y - grid.y_min) / grid.resolution).astype(np.int64)
    return rows, cols, steps
