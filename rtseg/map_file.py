"""Occupancy grids as map files: the PGM image + YAML that ROS's map_server (Nav2's
``nav2_map_server``, ROS 1's ``map_server``) loads and ``map_saver`` writes, so a grid of
rtseg's opens in any ROS tool and in any image viewer.

Two modes, as map_server reads them (occupancy ``occ = (255 - pixel) / 255``, negate 0):

- ``trinary`` for free / occupied grids (a drivable mask's): 254 free, 0 occupied, 205
  unknown, with ``free_thresh: 0.196`` and ``occupied_thresh: 0.65``. 205 reads as occ
  0.19608, above 0.196: unknown. Nav2's map_saver writes ``free_thresh: 0.25``, under which
  its own 205 loads back as free, so unmapped ground would turn drivable; ROS 1's 0.196
  keeps it unknown.
- ``raw`` for cost grids (`[costs]` in a camera file): the pixel is the cost 0..100
  itself, 255 unknown; lossless, dark to the eye.

The image's top row is the grid's last (y_max, left of the robot); ``origin`` is the
lower-left cell's corner (x_min, y_min, yaw 0) in the grid's frame. No torch here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtseg.errors import RtsegError
from rtseg.ground import FREE, OCCUPIED, GridSpec

FREE_THRESH, OCCUPIED_THRESH = 0.196, 0.65
TRINARY = {FREE: 254, OCCUPIED: 0}  # everything else (unknown) 205
UNKNOWN_SHADE, RAW_UNKNOWN = 205, 255


def map_image(values: np.ndarray, mode: str) -> np.ndarray:
    """A grid (rows, cols) int8 (0..100, -1 unknown) -> the map's (rows, cols) uint8
    image, top row = the grid's last row; `mode` "trinary" (values 0 and 100 only, any
    other reads as unknown) or "raw"."""
    if values.ndim != 2 or values.dtype != np.int8:
        raise ValueError(f"a grid is (rows, cols) int8, got {values.shape} {values.dtype}")
    if mode == "trinary":
        lut = np.full(256, UNKNOWN_SHADE, np.uint8)
        for value, shade in TRINARY.items():
            lut[value] = shade
    elif mode == "raw":
        lut = np.full(256, RAW_UNKNOWN, np.uint8)
        lut[:OCCUPIED + 1] = np.arange(OCCUPIED + 1)
    else:
        raise ValueError(f"mode is trinary or raw, got {mode!r}")
    return lut[values.view(np.uint8)[::-1]]


def write_map(stem: str | Path, grid: GridSpec, values: np.ndarray,
              mode: str = "trinary") -> tuple[Path, Path]:
    """Write STEM.pgm and STEM.yaml (module doc) of the grid `values` (rows, cols) int8
    of `grid`; returns both paths."""
    import cv2

    stem = Path(stem)
    if values.shape != grid.shape:
        raise ValueError(f"values {values.shape} are not the grid's {grid.shape}")
    image_path, yaml_path = stem.with_suffix(".pgm"), stem.with_suffix(".yaml")
    if not cv2.imwrite(str(image_path), map_image(values, mode)):
        raise RtsegError(f"could not write {image_path}: is the folder writable?")
    yaml_path.write_text(
        f"# {grid.shape[1]} x {grid.shape[0]} cells in frame {grid.frame_id} (rtseg)\n"
        f"image: {image_path.name}\nmode: {mode}\nresolution: {grid.resolution!r}\n"
        f"origin: [{grid.x_min!r}, {grid.y_min!r}, 0.0]\nnegate: 0\n"
        f"occupied_thresh: {OCCUPIED_THRESH}\nfree_thresh: {FREE_THRESH}\n")
    return image_path, yaml_path
