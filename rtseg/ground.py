"""The drivable mask on the ground: a bird's-eye occupancy grid for navigation.

A navigation stack plans in metres, not pixels. With the camera's pinhole intrinsics and
where it sits on the robot, every cell of a flat-ground grid around the robot projects to
one pixel of the drivable mask (through the lens's distortion, OpenCV's model, when the
camera has one, or a fisheye's equidistant model); sampling the mask there gives the grid
a planner reads (ROS ``nav_msgs/OccupancyGrid`` values: 0 = free (drivable), 100 =
occupied (not drivable), -1 = unknown (out of view)). Assumes flat ground: anything
standing on it (a car, a wall) is occupied where it hides the ground, and its shadow in
the grid reaches as far as the ground it hides.

Frames follow ROS REP 103: the base frame has x forward, y left, z up, the ground at
z = 0; the camera's mount is its position in that frame and roll / pitch / yaw in degrees
(pitch > 0 looks down); pixels are OpenCV's (u right, v down, pixel centres at integers).
The grid is ``rows x cols`` cells of `resolution` metres: column j along x from `x_min`,
row i along y from `y_min`, row-major as in OccupancyGrid (whose origin is the corner
(x_min, y_min)). A camera file gives all three (rtseg.camera_file).

No torch here: numpy and OpenCV.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rtseg.errors import RtsegError

log = logging.getLogger("rtseg.ground")
ASPECT_TOLERANCE = 0.01  # relative: a mask of another shape than the camera's is warned of

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
MIN_DEPTH_M = 0.05  # a ground point nearer the camera's image plane than this is not seen
LENSES = ("pinhole", "fisheye")
# drivable mask value (0 / 1; 255 = outside the image) -> occupancy value
_OCCUPANCY = np.full(256, UNKNOWN, np.int8)
_OCCUPANCY[0], _OCCUPANCY[1] = OCCUPIED, FREE


@dataclass(frozen=True)
class Camera:
    """A camera on the robot: intrinsics (pixels) at `width` x `height`, its `lens` and the
    lens's `distortion`, and its mount in the base frame (x, y, z metres; roll, pitch, yaw
    degrees, pitch > 0 down). A "pinhole" lens takes OpenCV's coefficients k1, k2, p1,
    p2[, k3[, k4, k5, k6]] (() for none); a "fisheye" lens is the equidistant
    (Kannala-Brandt) model of OpenCV's cv2.fisheye and ROS's "equidistant": a ray at angle
    theta off the axis lands at radius theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 +
    k4 theta^8) in normalised coordinates, `distortion` (k1, k2, k3, k4) or () for all 0."""

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
    distortion: tuple[float, ...] = ()
    lens: str = "pinhole"

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
        if self.lens == "fisheye":
            x, y, ahead = self._fisheye(opt)
        else:
            depth = opt[..., 2]
            ahead = depth > MIN_DEPTH_M
            safe = np.where(ahead, depth, 1.0)
            x, y = opt[..., 0] / safe, opt[..., 1] / safe
            if any(self.distortion):
                x, y, within = self._distort(x, y)
                ahead &= within
        u = (self.fx * x + self.cx + 0.5) * sx - 0.5
        v = (self.fy * y + self.cy + 0.5) * sy - 0.5
        return np.stack([u, v], axis=-1), ahead

    def _distort(self, x: np.ndarray, y: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised pinhole coordinates -> distorted ones (OpenCV's model), and whether
        each is within the lens's field (its radius at most that of the image's corners:
        beyond, the polynomial folds far-off points back into the picture)."""
        k1, k2, p1, p2, k3, k4, k5, k6 = (*self.distortion, *(0.0,) * 8)[:8]
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd, r2 <= self.field_radius() ** 2

    def _fisheye(self, opt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Optical-frame points (..., 3) -> the equidistant model's normalised coordinates
        (x, y), and whether each is in the lens's field: at most `field_angle` off the axis
        (a fisheye sees beside and behind its image plane) and further than MIN_DEPTH_M."""
        radius = np.hypot(opt[..., 0], opt[..., 1])
        theta = np.arctan2(radius, opt[..., 2])
        scale = _theta_d(theta, self.distortion) / np.where(radius > 1e-12, radius, 1.0)
        seen = (theta <= self.field_angle()) & (np.linalg.norm(opt, axis=-1) > MIN_DEPTH_M)
        return opt[..., 0] * scale, opt[..., 1] * scale, seen

    def field_radius(self) -> float:
        """The largest normalised radius the image sees (at its border), undistorted
        (pinhole lenses)."""
        return _field_radius(self)

    def field_angle(self) -> float:
        """Fisheye: the largest angle (radians) off the axis the image sees, at its
        corners, or where the lens's polynomial stops growing, whichever comes first."""
        corners = np.hypot((np.array([-0.5, self.width - 0.5]) - self.cx) / self.fx,
                           (np.array([[-0.5], [self.height - 0.5]]) - self.cy) / self.fy)
        return _fisheye_angle(self.distortion, float(corners.max()))

    def horizontal_field(self) -> tuple[float, float]:
        """(right, left): the angles (radians) off the axis that the image's outer columns
        see along its principal row; with a pinhole lens's distortion, its field radius's
        angle either side."""
        right, left = (self.width - 0.5 - self.cx) / self.fx, (self.cx + 0.5) / self.fx
        if self.lens == "fisheye":
            return (_fisheye_angle(self.distortion, right), _fisheye_angle(self.distortion, left))
        if any(self.distortion):
            return (math.atan(self.field_radius()),) * 2
        return math.atan(right), math.atan(left)


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
    """Masks -> occupancy grids for one camera and one grid: a drivable mask as free /
    occupied (`occupancy`), or with `costs` (class name -> 0..100; other classes
    `default_cost`) a classes mask as a cost per cell (`cost_grid`), for a robot that may
    cross some classes at a price (a sidewalk robot: pavement 0, road 80)."""

    def __init__(self, camera: Camera, grid: GridSpec = GridSpec(),
                 costs: tuple[tuple[str, int], ...] = (), default_cost: int = OCCUPIED) -> None:
        self.camera, self.grid = camera, grid
        self.costs, self.default_cost = dict(costs), default_cost
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
        if drivable.ndim != 2 or drivable.dtype != np.uint8:
            raise ValueError(f"a drivable mask is (H, W) uint8, got {drivable.shape} "
                             f"{drivable.dtype}")
        return _OCCUPANCY[self._sample(drivable)]

    @property
    def mask_kind(self) -> str:
        """The mask this camera's grid is made from: "classes" with costs, else "drivable"."""
        return "classes" if self.costs else "drivable"

    def grid_of(self, mask: np.ndarray, class_names: tuple[str, ...]) -> np.ndarray:
        """The grid (rows, cols) int8 of a `mask_kind` mask (H, W) uint8: `cost_grid` of a
        classes mask (with costs), else `occupancy` of a drivable one."""
        return self.cost_grid(mask, class_names) if self.costs else self.occupancy(mask)

    def grid_of_masks(self, masks, class_names: tuple[str, ...]) -> np.ndarray:
        """`grid_of` the `mask_kind` mask of one frame's `masks` (rtseg's Masks, or anything
        with `classes` and `drivable` (H, W) uint8)."""
        return self.grid_of(getattr(masks, self.mask_kind), class_names)

    def cost_grid(self, classes: np.ndarray, class_names: tuple[str, ...]) -> np.ndarray:
        """A classes mask (H, W) uint8 (index into `class_names`, 255 = no prediction) ->
        the grid (rows, cols) int8 of each cell's class's cost (`costs`, else
        `default_cost`), -1 where out of view or not predicted."""
        if classes.ndim != 2 or classes.dtype != np.uint8:
            raise ValueError(f"a classes mask is (H, W) uint8, got {classes.shape} "
                             f"{classes.dtype}")
        return self.cost_lut(tuple(class_names))[self._sample(classes)]

    def cost_lut(self, class_names: tuple[str, ...]) -> np.ndarray:
        """(256,) int8: class index -> cost; 255 and indices past the names -> -1."""
        lut = np.full(256, UNKNOWN, np.int8)
        for index, name in enumerate(class_names[:255]):
            lut[index] = self.costs.get(name, self.default_cost)
        return lut

    def _sample(self, mask: np.ndarray) -> np.ndarray:
        """(rows, cols) uint8: the mask's value at each cell's pixel, 255 outside it."""
        import cv2

        map_u, map_v = self.maps(*mask.shape)
        return cv2.remap(mask, map_u, map_v, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=255)

    def visible_fraction(self) -> float:
        """The fraction of the grid's cells that land in the camera's image."""
        map_u, map_v = self.maps(self.camera.height, self.camera.width)
        inside = ((map_u > -0.5) & (map_u < self.camera.width - 0.5)
                  & (map_v > -0.5) & (map_v < self.camera.height - 0.5))
        return float(inside.mean())


def _theta_d(theta: np.ndarray, k: tuple[float, ...]) -> np.ndarray:
    """The equidistant model: angle off the axis -> distorted normalised radius."""
    k1, k2, k3, k4 = (*k, 0.0, 0.0, 0.0, 0.0)[:4]
    t2 = theta * theta
    return theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))


@lru_cache(maxsize=64)
def _fisheye_angle(k: tuple[float, ...], radius: float) -> float:
    """The angle off the axis whose distorted radius is `radius`, on the rising part of the
    lens's polynomial (from 0 to at most pi): its end where `radius` lies beyond."""
    theta = np.linspace(0.0, math.pi, 8193)
    radii = _theta_d(theta, k)
    falling = np.flatnonzero(np.diff(radii) <= 0)
    end = int(falling[0]) + 1 if falling.size else theta.size
    if radius >= radii[end - 1]:
        return float(theta[end - 1])
    return float(np.interp(radius, radii[:end], theta[:end]))


@lru_cache(maxsize=16)
def _field_radius(camera: Camera) -> float:
    import cv2

    left, top, right, bottom = -0.5, -0.5, camera.width - 0.5, camera.height - 0.5
    t = np.linspace(0.0, 1.0, 64)
    u, v = left + t * (right - left), top + t * (bottom - top)
    border = np.concatenate([np.stack([u, np.full_like(u, top)], 1),
                             np.stack([u, np.full_like(u, bottom)], 1),
                             np.stack([np.full_like(v, left), v], 1),
                             np.stack([np.full_like(v, right), v], 1)])
    k = np.array([[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1]])
    normal = cv2.undistortPoints(border.reshape(-1, 1, 2), k, np.array(camera.distortion))
    return float(np.hypot(normal[..., 0], normal[..., 1]).max())


@lru_cache(maxsize=16)
def _maps(camera: Camera, grid: GridSpec, height: int, width: int
          ) -> tuple[np.ndarray, np.ndarray]:
    aspect = (width / height) / (camera.width / camera.height)
    if abs(aspect - 1) > ASPECT_TOLERANCE:  # once per size: the tables are cached
        log.warning("a %dx%d mask has another shape than the camera file's %dx%d: taken as "
                    "the whole frame resized; if the node crops (--crop X,Y,W,H), add "
                    "crop = [X, Y, W, H] to the camera file's [camera]",
                    width, height, camera.width, camera.height)
    pixels, ahead = camera.project(grid.centres(), (height, width))
    pixels[~ahead] = -1e6  # far outside: remap's border value (unknown)
    pixels = np.clip(pixels, -1e6, 1e6)
    map_u = np.ascontiguousarray(pixels[..., 0], np.float32)
    map_v = np.ascontiguousarray(pixels[..., 1], np.float32)
    map_u.flags.writeable = map_v.flags.writeable = False
    return map_u, map_v
