"""The drivable mask on the ground: a bird's-eye occupancy grid for navigation.

A navigation stack plans in metres, not pixels. With the camera's pinhole intrinsics and
where it sits on the robot, every cell of a flat-ground grid around the robot projects to
one pixel of the drivable mask; sampling the mask there gives the grid a planner reads
(ROS ``nav_msgs/OccupancyGrid`` values: 0 = free (drivable), 100 = occupied (not
drivable), -1 = unknown (out of view)). Assumes flat ground: anything standing on it (a
car, a wall) is occupied where it hides the ground, and its shadow in the grid reaches
as far as the ground it hides.

Frames follow ROS REP 103: the base frame has x forward, y left, z up, the ground at
z = 0; the camera's mount is its position in that frame and roll / pitch / yaw in degrees
(pitch > 0 looks down); pixels are OpenCV's (u right, v down, pixel centres at integers).
The grid is ``rows x cols`` cells of `resolution` metres: column j along x from `x_min`,
row i along y from `y_min`, row-major as in OccupancyGrid (whose origin is the corner
(x_min, y_min)). The camera file (TOML) gives all three::

    [camera]              # intrinsics at this image size (scaled to the mask's size)
    width = 640
    height = 360
    fx = 480.0            # or hfov_deg = 67.4; fy defaults to fx
    cx = 320.0            # default width / 2
    cy = 162.0            # default height / 2
    [mount]               # in the base frame: metres and degrees
    z = 2.5               # height above the ground (required)
    pitch_deg = 0.0
    [grid]
    x_min = 2.0
    x_max = 40.0
    y_min = -10.0
    y_max = 10.0
    resolution = 0.1
    frame_id = "base_link"

No torch here: numpy and OpenCV.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from rtseg.errors import RtsegError, type_name

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
MIN_DEPTH_M = 0.05  # a ground point nearer the camera's image plane than this is not seen
# drivable mask value (0 / 1; 255 = outside the image) -> occupancy value
_OCCUPANCY = np.full(256, UNKNOWN, np.int8)
_OCCUPANCY[0], _OCCUPANCY[1] = OCCUPIED, FREE


@dataclass(frozen=True)
class Camera:
    """A pinhole camera on the robot: intrinsics (pixels) at `width` x `height`, and its
    mount in the base frame (x, y, z metres; roll, pitch, yaw degrees, pitch > 0 down)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    z: float
    x: float = 0.0
    y: float = 0.0
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0

    def rotation(self) -> np.ndarray:
        """(3, 3) float64: optical-frame axes (x right, y down, z ahead) in the base frame."""
        r, p, y = (math.radians(a) for a in (self.roll_deg, self.pitch_deg, self.yaw_deg))
        rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
        ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
        rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
        body_from_optical = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
        return rz @ ry @ rx @ body_from_optical

    def project(self, points: np.ndarray, size: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Base-frame points (..., 3) metres -> pixels (..., 2) float64 (u, v) in an image of
        `size` = (height, width) (default the camera's own), and (...,) bool: in front of
        the camera (the pixel may still fall outside the image)."""
        height, width = size or (self.height, self.width)
        sx, sy = width / self.width, height / self.height
        rel = np.asarray(points, np.float64) - (self.x, self.y, self.z)
        opt = rel @ self.rotation()  # rows: R^T p
        depth = opt[..., 2]
        ahead = depth > MIN_DEPTH_M
        safe = np.where(ahead, depth, 1.0)
        u = (self.fx * opt[..., 0] / safe + self.cx + 0.5) * sx - 0.5
        v = (self.fy * opt[..., 1] / safe + self.cy + 0.5) * sy - 0.5
        return np.stack([u, v], axis=-1), ahead


@dataclass(frozen=True)
class GridSpec:
    """The grid: x from `x_min` to `x_max` (ahead), y from `y_min` (right) to `y_max`
    (left), square cells of `resolution` metres, in the frame `frame_id`."""

    x_min: float = 2.0
    x_max: float = 40.0
    y_min: float = -10.0
    y_max: float = 10.0
    resolution: float = 0.1
    frame_id: str = "base_link"

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols): rows along y, columns along x."""
        return (round((self.y_max - self.y_min) / self.resolution),
                round((self.x_max - self.x_min) / self.resolution))

    def centres(self) -> np.ndarray:
        """(rows, cols, 3) float64: each cell's centre on the ground, base frame."""
        rows, cols = self.shape
        x = self.x_min + (np.arange(cols) + 0.5) * self.resolution
        y = self.y_min + (np.arange(rows) + 0.5) * self.resolution
        xx, yy = np.meshgrid(x, y)
        return np.stack([xx, yy, np.zeros_like(xx)], axis=-1)


class GroundGrid:
    """Drivable masks -> occupancy grids for one camera and one grid."""

    def __init__(self, camera: Camera, grid: GridSpec = GridSpec()) -> None:
        self.camera, self.grid = camera, grid
        if not self.visible_fraction() > 0:
            raise RtsegError(
                f"no cell of the grid (x {grid.x_min}..{grid.x_max} m, y {grid.y_min}.."
                f"{grid.y_max} m) is in view of the camera (z {camera.z} m, pitch "
                f"{camera.pitch_deg} deg, yaw {camera.yaw_deg} deg): pitch > 0 looks down, "
                "x is ahead of the robot; check [mount] and [grid]")

    def maps(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap tables for a (height, width) mask: (rows, cols) float32 u and v of
        each cell's pixel, -1 where the cell is behind the camera."""
        return _maps(self.camera, self.grid, int(height), int(width))

    def occupancy(self, drivable: np.ndarray) -> np.ndarray:
        """A drivable mask (H, W) uint8 (1 drivable, 0 not) -> the grid (rows, cols) int8:
        0 free, 100 occupied, -1 unknown (out of view). Each cell takes the mask's value at
        the pixel its centre projects to (nearest)."""
        import cv2

        if drivable.ndim != 2 or drivable.dtype != np.uint8:
            raise ValueError(f"a drivable mask is (H, W) uint8, got {drivable.shape} "
                             f"{drivable.dtype}")
        map_u, map_v = self.maps(*drivable.shape)
        sampled = cv2.remap(drivable, map_u, map_v, cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=255)
        return _OCCUPANCY[sampled]

    def visible_fraction(self) -> float:
        """The fraction of the grid's cells that land in the camera's image."""
        map_u, map_v = self.maps(self.camera.height, self.camera.width)
        inside = ((map_u > -0.5) & (map_u < self.camera.width - 0.5)
                  & (map_v > -0.5) & (map_v < self.camera.height - 0.5))
        return float(inside.mean())


@lru_cache(maxsize=16)
def _maps(camera: Camera, grid: GridSpec, height: int, width: int
          ) -> tuple[np.ndarray, np.ndarray]:
    pixels, ahead = camera.project(grid.centres(), (height, width))
    pixels[~ahead] = -1e6  # far outside: remap's border value (unknown)
    pixels = np.clip(pixels, -1e6, 1e6)
    map_u = np.ascontiguousarray(pixels[..., 0], np.float32)
    map_v = np.ascontiguousarray(pixels[..., 1], np.float32)
    map_u.flags.writeable = map_v.flags.writeable = False
    return map_u, map_v


def load_ground(path: str | Path) -> GroundGrid:
    """A camera file (TOML, see the module docstring) -> its GroundGrid; an RtsegError
    naming the file and the key for anything missing, unknown or out of range."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RtsegError(f"cannot read camera file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RtsegError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"camera", "mount", "grid"}
    if unknown:
        raise RtsegError(f"{path}: unknown table(s) {sorted(unknown)}: a camera file has "
                         "[camera], [mount] and [grid]")
    camera = _camera(path, _table(path, raw, "camera"), _table(path, raw, "mount"))
    grid = _grid(path, _table(path, raw, "grid"))
    try:
        return GroundGrid(camera, grid)
    except RtsegError as exc:
        raise RtsegError(f"{path}: {exc}") from None


def _table(path: Path, raw: dict, name: str) -> dict:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise RtsegError(f"{path}: [{name}] must be a table, got {type_name(table)}")
    return table


def _number(path: Path, table: str, values: dict, key: str, default=None) -> float:
    value = values.get(key, default)
    if value is None:
        raise RtsegError(f"{path}: [{table}] needs {key}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RtsegError(f"{path}: [{table}] {key} must be a number, got {value!r}")
    return float(value)


def _check_keys(path: Path, table: str, values: dict, allowed: set[str]) -> None:
    unknown = set(values) - allowed
    if unknown:
        raise RtsegError(f"{path}: [{table}] has unknown key(s) {sorted(unknown)}; "
                         f"known: {sorted(allowed)}")


def _camera(path: Path, cam: dict, mount: dict) -> Camera:
    _check_keys(path, "camera", cam, {"width", "height", "fx", "fy", "cx", "cy", "hfov_deg"})
    _check_keys(path, "mount", mount,
                {"x", "y", "z", "roll_deg", "pitch_deg", "yaw_deg"})
    width, height = (_number(path, "camera", cam, k) for k in ("width", "height"))
    if width < 1 or height < 1 or width != int(width) or height != int(height):
        raise RtsegError(f"{path}: [camera] width and height are image sizes in pixels, "
                         f"got {width} x {height}")
    if ("fx" in cam) == ("hfov_deg" in cam):
        raise RtsegError(f"{path}: [camera] needs fx (pixels) or hfov_deg, exactly one")
    if "hfov_deg" in cam:
        hfov = _number(path, "camera", cam, "hfov_deg")
        if not 0 < hfov < 180:
            raise RtsegError(f"{path}: [camera] hfov_deg must be in (0, 180), got {hfov}")
        fx = width / 2 / math.tan(math.radians(hfov) / 2)
    else:
        fx = _number(path, "camera", cam, "fx")
    fy = _number(path, "camera", cam, "fy", fx)
    if fx <= 0 or fy <= 0:
        raise RtsegError(f"{path}: [camera] focal lengths must be positive, got {fx}, {fy}")
    z = _number(path, "mount", mount, "z")
    if z <= 0:
        raise RtsegError(f"{path}: [mount] z is the camera's height above the ground and "
                         f"must be positive, got {z}")
    return Camera(width=int(width), height=int(height), fx=fx, fy=fy,
                  cx=_number(path, "camera", cam, "cx", width / 2),
                  cy=_number(path, "camera", cam, "cy", height / 2), z=z,
                  **{k: _number(path, "mount", mount, k, 0.0)
                     for k in ("x", "y", "roll_deg", "pitch_deg", "yaw_deg")})


def _grid(path: Path, values: dict) -> GridSpec:
    names = {f.name for f in fields(GridSpec)}
    _check_keys(path, "grid", values, names)
    frame_id = values.get("frame_id", GridSpec.frame_id)
    if not isinstance(frame_id, str) or not frame_id:
        raise RtsegError(f"{path}: [grid] frame_id must be a non-empty string")
    numbers = {k: _number(path, "grid", values, k, getattr(GridSpec, k))
               for k in names - {"frame_id"}}
    grid = GridSpec(frame_id=frame_id, **numbers)
    if grid.resolution <= 0:
        raise RtsegError(f"{path}: [grid] resolution must be positive, got {grid.resolution}")
    rows, cols = grid.shape
    if rows < 1 or cols < 1 or rows * cols > 25_000_000:
        raise RtsegError(f"{path}: [grid] makes {rows} x {cols} cells; x_max > x_min, y_max > "
                         "y_min and at most 25 million cells (raise resolution)")
    return grid


def load_grounds(options: tuple[str, ...], names: tuple[str, ...]) -> dict[str, GroundGrid]:
    """`--camera [NAME=]FILE` options -> camera NAME -> its GroundGrid; a FILE without
    ``NAME=`` serves every one of `names`. An RtsegError for a NAME not among `names`."""
    grounds: dict[str, GroundGrid] = {}
    for option in options:
        name, sep, file = option.partition("=")
        if not sep or "/" in name or "\\" in name:
            name, file = "", option
        if name and name not in names:
            raise RtsegError(f"--camera {option}: {name} is not one of the cameras here "
                             f"({', '.join(names) or 'none'}); give --camera NAME=FILE for one "
                             "of them, or FILE for all")
        ground = load_ground(file)
        grounds |= {n: ground for n in ([name] if name else names)}
    return grounds
