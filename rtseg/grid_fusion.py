"""Several cameras on one grid ("surround view"): the newest grid of each camera fused
into one, e.g. four fisheyes around a robot, or a front camera and a rear one.

Beside the fused grid, the fused free space as a laser scan all round the robot
(rtseg.free_space.surround_scan: what Nav2's obstacle layer or a 2D SLAM takes from a
360-degree lidar), its beams from the grid's origin.

Every camera's file must give the same [grid] (extent, resolution, frame_id): the cells
are then the same cells, and fusing is per cell. A cell takes the highest value any
camera gives it, as Nav2's layered costmap combines its layers: occupied (100) wins over
free (0), a higher cost over a lower one, and a known value over unknown (-1, which is
below every known value); unknown only where no camera sees the cell. Conservative on
purpose: one camera's obstacle is not cleared by another's view. Only grids whose capture
stamps lie within `max_age_s` of the newest one take part, so a camera that stops
(unplugged, its frames dropped) falls out of the fused grid instead of freezing in it.

No torch here: numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtseg.errors import RtsegError
from rtseg.free_space import surround_scan
from rtseg.ground import GridSpec, GroundGrid

FUSED_TOPIC = "grid"  # rtseg topic of the fused grid: /grid in ROS terms
FUSED_SCAN_TOPIC = "scan"  # its free space as a laser scan all round: /scan
MAX_AGE_S = 0.5


def fuse(grids: Sequence[np.ndarray]) -> np.ndarray:
    """Grids (rows, cols) int8 of one GridSpec -> their fusion (rows, cols) int8: each
    cell's highest value (module doc)."""
    if not grids:
        raise ValueError("fuse needs at least one grid")
    out = np.array(grids[0], np.int8, copy=True)
    for grid in grids[1:]:
        np.maximum(out, grid, out=out)
    return out


class GridFusion:
    """The newest grid of each camera in `grounds` (camera name -> GroundGrid, at least
    two, one [grid] for all), fused on every update; `scan` the beams of its laser scan."""

    def __init__(self, grounds: dict[str, GroundGrid], max_age_s: float = MAX_AGE_S) -> None:
        if len(grounds) < 2:
            raise RtsegError(f"--fuse fuses the grids of several cameras: give a camera file "
                             f"to two or more (--camera NAME=FILE), got {len(grounds)}")
        specs: dict[GridSpec, list[str]] = {}
        for name, ground in grounds.items():
            specs.setdefault(ground.grid, []).append(name)
        if len(specs) > 1:
            differ = "; ".join(f"{', '.join(names)}: {_describe(spec)}"
                               for spec, names in specs.items())
            raise RtsegError(f"--fuse needs one [grid] in every camera file, so that cells "
                             f"are the same cells; they differ ({differ})")
        if max_age_s <= 0:
            raise RtsegError(f"the fused grids' age limit must be positive, got {max_age_s}")
        self.grid = next(iter(specs))
        self.cameras = tuple(grounds)
        self.scan = surround_scan(list(grounds.values()))
        self.max_age_ns = round(max_age_s * 1e9)
        self._latest: dict[str, tuple[int, np.ndarray]] = {}

    def update(self, camera: str, stamp_ns: int, values: np.ndarray) -> np.ndarray:
        """Take `camera`'s grid (rows, cols) int8 captured at `stamp_ns`; return the fusion
        (rows, cols) int8 of it and every camera's newest grid within the age limit."""
        if camera not in self.cameras:
            raise KeyError(f"{camera} is not one of the fused cameras {self.cameras}")
        if values.shape != self.grid.shape:
            raise ValueError(f"a grid of {values.shape} cells, not {self.grid.shape}")
        self._latest[camera] = (stamp_ns, values)
        newest = max(stamp for stamp, _ in self._latest.values())
        return fuse([grid for stamp, grid in self._latest.values()
                     if newest - stamp <= self.max_age_ns])


def _describe(spec: GridSpec) -> str:
    return (f"x {spec.x_min}..{spec.x_max}, y {spec.y_min}..{spec.y_max}, "
            f"{spec.resolution} m, {spec.frame_id}")
