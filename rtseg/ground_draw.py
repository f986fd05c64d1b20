"""Drawing the ground (rtseg.ground): a grid seen from above, for `rtseg view --camera`;
and `rtseg ground`, the check of a camera file before trusting its grid (or of several,
for cameras fused into one grid: what they see together).

`grid_picture`: an occupancy grid as a picture, ahead up and left on the left, free cells
green, occupied red, unknown grey, a line every 10 m, the robot's place marked. The check:
what the grid covers (cells, how much of it the camera sees, where the ground comes into
view straight ahead, the horizon's row) and, over a frame of that camera, the grid drawn
as it lies on the ground: its outline and lines every few metres, labelled with their
distance. A calibration that is off shows at once: the lines miss the lane markings, the
outline's near edge sits below the bonnet. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rtseg.errors import RtsegError
from rtseg.ground import FREE, OCCUPIED, UNKNOWN, GridSpec, GroundGrid
from rtseg.imagefile import ImageFileError, decode_image

OUTLINE, LINES = (0, 215, 255), (255, 255, 255)  # BGR
SAMPLES = 400  # points per drawn line
# grid_picture's colours (BGR) of occupancy 0 (free), 100 (occupied), -1 (unknown)
FREE_BGR, OCCUPIED_BGR, UNKNOWN_BGR = (70, 170, 60), (50, 40, 170), (80, 80, 80)
_GRID_LUT = np.zeros((256, 3), np.uint8)  # occupancy (as uint8) -> colour; costs between
_GRID_LUT[:101] = np.round(np.linspace(FREE_BGR, OCCUPIED_BGR, 101))  # free and occupied
_GRID_LUT[255] = UNKNOWN_BGR  # -1
RULE_M = 10.0  # grid_picture: a line across every this many metres ahead
ONE_CAMERA = 40  # check_cameras' picture: a cell one camera sees, shaded as this cost
PICTURE_HEIGHT = 480  # pixels: a grid pictured on its own (fused, or a rig's coverage)


def grid_legend() -> list[dict]:
    """grid_picture's colours as a legend in rtseg.palette.legend's form, ``[{"index":
    occupancy value, "name", "rgb": "#rrggbb"}]``."""
    return [{"index": value, "name": name, "rgb": "#{2:02x}{1:02x}{0:02x}".format(*bgr)}
            for value, name, bgr in ((FREE, "free", FREE_BGR), (OCCUPIED, "occupied",
                                     OCCUPIED_BGR), (UNKNOWN, "unknown", UNKNOWN_BGR))]


def grid_picture(grid: GridSpec, occupancy: np.ndarray, height: int) -> np.ndarray:
    """`occupancy` (rows, cols) int8 of `grid` -> (height, W, 3) uint8 BGR seen from above:
    ahead (x) up, left (y) on the left, square cells (W = height * rows / cols); free
    green, occupied red, costs between them in between, unknown grey; a faint line every
    `RULE_M` metres ahead, and a white triangle where the robot (x = 0, y = 0) is, on the
    bottom edge if it is behind."""
    import cv2

    rows, cols = occupancy.shape
    top_down = _GRID_LUT[occupancy.view(np.uint8)[::-1, ::-1].T]  # (cols, rows, 3)
    width = max(1, round(height * rows / cols))
    picture = cv2.resize(top_down, (width, height), interpolation=cv2.INTER_NEAREST)
    scale = height / (grid.x_max - grid.x_min)  # pixels per metre
    for x in np.arange(math.ceil(grid.x_min / RULE_M) * RULE_M, grid.x_max, RULE_M):
        row = round((grid.x_max - x) * scale)
        picture[row:row + 1] = picture[row:row + 1] // 2 + 100
    u = (grid.y_max - 0.0) * scale
    v = min(height - 1.0, (grid.x_max - 0.0) * scale)
    if 0 <= u < width:
        size = max(4.0, height / 40)
        tip = np.array([[u, v - 2 * size], [u - size, v], [u + size, v]], np.int32)
        cv2.fillPoly(picture, [tip], (255, 255, 255))
    return picture


def describe(ground: GroundGrid) -> dict:
    """The facts of a camera file: grid shape and extent, the fraction of cells in view,
    the nearest ground seen straight ahead (metres, None if none) and the horizon's row
    (None when off the image), at the camera's own image size."""
    cam, grid = ground.camera, ground.grid
    rows, cols = grid.shape
    ahead = np.stack([np.linspace(0.05, 500.0, 20000), np.zeros(20000), np.zeros(20000)], -1)
    ahead = ahead @ _yaw(cam.yaw_deg).T + (cam.x, cam.y, 0.0)
    pixels, seen = cam.project(ahead)
    inside = seen & _inside(pixels, cam.height, cam.width)
    nearest = float(np.hypot(*(ahead[inside][0, :2] - (cam.x, cam.y)))) if inside.any() else None
    (_, horizon), _ = cam.project(np.array([cam.x, cam.y, 0.0]) + _yaw(cam.yaw_deg)[:, 0] * 1e7)
    return {"cells": [rows, cols], "resolution_m": grid.resolution, "frame_id": grid.frame_id,
            "x_m": [grid.x_min, grid.x_max], "y_m": [grid.y_min, grid.y_max],
            "visible_fraction": round(ground.visible_fraction(), 4),
            "nearest_ground_ahead_m": None if nearest is None else round(nearest, 2),
            "horizon_row": round(float(horizon), 1) if -0.5 < horizon < cam.height - 0.5
            else None,
            "hfov_deg": round(math.degrees(sum(cam.horizontal_field()) if cam.lens == "fisheye"
                                           else 2 * math.atan(cam.width / 2 / cam.fx)), 1),
            "lens": cam.lens, "distortion": list(cam.distortion)}


def _yaw(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def _inside(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    u, v = pixels[..., 0], pixels[..., 1]
    return (u > -0.5) & (u < width - 0.5) & (v > -0.5) & (v < height - 0.5)


def draw_grid(ground: GroundGrid, image: np.ndarray, step_m: float | None = None) -> np.ndarray:
    """`image` (H, W, 3) uint8 BGR, a frame of the camera (any size: the intrinsics are
    scaled to it) -> a copy with the grid on the ground: outline, lines of equal x and y
    every `step_m` metres (default: about eight across the grid), distances written."""

    grid, out = ground.grid, image.copy()
    step = step_m or _nice_step(max(grid.x_max - grid.x_min, grid.y_max - grid.y_min) / 8)
    size, labelled = image.shape[:2], []
    for x in _ticks(grid.x_min, grid.x_max, step):
        _line(ground, out, (x, grid.y_min), (x, grid.y_max), LINES, size, (f"{x:g} m", labelled))
    for y in _ticks(grid.y_min, grid.y_max, step):
        _line(ground, out, (grid.x_min, y), (grid.x_max, y), LINES, size)
    corners = [(grid.x_min, grid.y_min), (grid.x_max, grid.y_min), (grid.x_max, grid.y_max),
               (grid.x_min, grid.y_max), (grid.x_min, grid.y_min)]
    for start, end in zip(corners, corners[1:]):
        _line(ground, out, start, end, OUTLINE, size)
    return out


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _ticks(low: float, high: float, step: float) -> list[float]:
    first = math.ceil(low / step) * step
    return [round(first + i * step, 6) for i in range(int((high - first) / step + 1e-9) + 1)]


def _line(ground: GroundGrid, image: np.ndarray, start, end, colour, size,
          label: tuple[str, list] | None = None) -> None:
    """The ground segment `start` -> `end` ((x, y) metres), the parts in front of the
    camera, as a polyline; `label` = (text, rows of the labels so far): the text at the
    middle of its visible part, unless it would crowd an earlier label."""
    import cv2

    t = np.linspace(0.0, 1.0, SAMPLES)[:, None]
    points = np.concatenate([(1 - t) * start + t * np.asarray(end), np.zeros((SAMPLES, 1))], 1)
    pixels, ahead = ground.camera.project(points, size)
    keep = ahead & _inside(pixels, size[0] + 2000, size[1] + 2000)  # near: drawable ints
    runs = np.split(np.arange(SAMPLES), np.flatnonzero(np.diff(keep.astype(np.int8))) + 1)
    for run in runs:
        if keep[run[0]] and len(run) > 1:
            cv2.polylines(image, [np.round(pixels[run] * 16).astype(np.int32)], False, colour,
                          1, cv2.LINE_AA, shift=4)
    visible = np.flatnonzero(ahead & _inside(pixels, *size))
    if label and visible.size:
        (text, rows), (u, v) = label, pixels[visible[len(visible) // 2]]
        if all(abs(v - row) >= 14 for row in rows):
            rows.append(v)
            cv2.putText(image, text, (int(u) + 3, int(v) - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        colour, 1, cv2.LINE_AA)


def check_ground(paths: Sequence[str], image: str | None = None, out: str | None = None,
                 model: str | None = None) -> dict:
    """`rtseg ground`: `check_camera` of one camera file, `check_cameras` of several."""
    if len(paths) == 1:
        return check_camera(paths[0], image, out, model)
    if image is not None or model is not None:
        raise RtsegError("--image and --model check one camera's frame: give one camera "
                         "file with them")
    return check_cameras(paths, out)


def coverage(grounds: Sequence[GroundGrid]) -> np.ndarray:
    """(rows, cols) uint8: how many of `grounds` (cameras on one GridSpec) see each cell,
    each camera at its own image size."""
    count = np.zeros(grounds[0].grid.shape, np.uint8)
    for ground in grounds:
        seen = ground.occupancy(np.zeros((ground.camera.height, ground.camera.width), np.uint8))
        count += seen != UNKNOWN
    return count


def check_cameras(paths: Sequence[str], out: str | None = None) -> dict:
    """`rtseg ground A.toml B.toml ...`: cameras fused into one grid (a surround rig for
    --fuse; rtseg.grid_fusion refuses files whose [grid]s differ): each file's description
    and, together, the fraction of cells some camera sees and the fractions seen by
    exactly 0, 1, 2... of them; with `out`, that coverage from above (`grid_picture`):
    grey where no camera sees, olive where one does, green where two or more do."""
    from rtseg.camera_file import load_ground
    from rtseg.grid_fusion import GridFusion

    grounds = {path: load_ground(path) for path in dict.fromkeys(paths)}
    grid = GridFusion(grounds).grid
    count = coverage(list(grounds.values()))
    facts = {"cameras": {path: describe(ground) for path, ground in grounds.items()},
             "together": {"visible_fraction": round(float((count > 0).mean()), 4),
                          "seen_by": [round(float((count == k).mean()), 4)
                                      for k in range(len(grounds) + 1)]}}
    if out is not None:
        _check_suffix(out)
        shade = np.select([count == 0, count == 1], [UNKNOWN, ONE_CAMERA], FREE)
        _write(out, grid_picture(grid, shade.astype(np.int8), PICTURE_HEIGHT))
        facts["drawn"] = out
    return facts


def check_camera(path: str, image: str | None = None, out: str | None = None,
                 model: str | None = None) -> dict:
    """`rtseg ground`: load the camera file at `path`, describe it, and with `image` write
    the grid drawn over it to `out`; with `model` too, the frame segmented by it (the
    viewer's overlay) under the grid's lines and, on the right, its drivable mask's grid
    from above (`grid_picture`), and the fraction of seen cells that are free. Returns the
    description (+ ``"drawn": out``)."""
    from rtseg.camera_file import load_ground

    ground = load_ground(path)
    facts = describe(ground)
    if (image is None) != (out is None):
        raise RtsegError("--image FRAME and --out FILE.png go together: the frame to draw "
                         "the grid over, and where to write it")
    if model is not None and image is None:
        raise RtsegError("--model segments the frame of --image FRAME (with --out FILE.png)")
    if image is not None:
        frame = _read_frame(image)
        _check_suffix(out)
        drawing = draw_grid(ground, frame)
        if model is not None:
            drawing, facts["free_fraction"] = _segmented(ground, frame, model)
        _write(out, drawing)
        facts["drawn"] = out
    return facts


def _read_frame(image: str) -> np.ndarray:
    try:
        return decode_image(Path(image).read_bytes())
    except (OSError, ImageFileError) as exc:
        raise RtsegError(f"cannot draw the grid over {image}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


def _segmented(ground: GroundGrid, frame: np.ndarray, model: str) -> tuple[np.ndarray, float]:
    """[the frame's overlay by `model` with the grid's lines | its grid from above (of
    costs, with [costs])], and the fraction of the seen cells that are free (cost 0)."""
    from rtseg.ground import FREE, UNKNOWN
    from rtseg.segmenter import Segmenter

    with Segmenter(model) as segmenter:
        masks = segmenter(frame)
        overlay = segmenter.overlay(frame, masks)
        names = segmenter.classes
    occupancy = ground.grid_of_masks(masks, names)
    seen = occupancy[occupancy != UNKNOWN]
    picture = grid_picture(ground.grid, occupancy, frame.shape[0])
    free = float((seen == FREE).mean()) if seen.size else 0.0
    return np.hstack([draw_grid(ground, overlay), picture]), round(free, 4)


def _check_suffix(out: str) -> None:
    if Path(out).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise RtsegError(f"cannot write {out}: --out is a .png or .jpg file")


def _write(out: str, picture: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(out, picture):
        raise RtsegError(f"cannot write {out}: is its folder ({Path(out).parent}) there "
                         "and writable?")
