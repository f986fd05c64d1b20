"""Camera files: where a camera sits on the robot and what its grid covers (rtseg.ground).

A TOML file of three tables (every key of the demo's, launch/cameras/demo.toml, is
commented there)::

    [camera]              # intrinsics at this image size (scaled to the mask's size)
    width = 640
    height = 360
    fx = 480.0            # pixels; or hfov_deg = 67.4; fy defaults to fx
    cx = 320.0            # default width / 2
    cy = 162.0            # default height / 2
    distortion = [-0.28, 0.07, 0.0, 0.0]   # optional: OpenCV's k1 k2 p1 p2 [k3 [k4 k5 k6]]
    # lens = "fisheye"    # an equidistant (Kannala-Brandt) lens: distortion = [k1 k2 k3 k4]
    # or, instead of all the above: camera_info = "front.yaml", a ROS camera calibration
    # (camera_calibration / camera_info_manager YAML), relative to this file
    # crop = [0, 0, 0, 880]  # the node's --crop X,Y,W,H: the intrinsics above stay the
    #                        # whole frame's; the file then describes the box
    [mount]               # in the base frame (x ahead, y left, z up): metres and degrees
    z = 2.5               # height above the ground (required)
    pitch_deg = 0.0       # > 0 looks down; also x, y, roll_deg, yaw_deg
    [grid]
    x_min = 2.0           # metres ahead ...
    x_max = 40.0
    y_min = -10.0         # ... right and left
    y_max = 10.0
    resolution = 0.1
    frame_id = "base_link"
    [costs]               # optional: the grid from the classes mask, a cost per class
    sidewalk = 0          # 0 free .. 100 occupied; a sidewalk robot's pavement,
    road = 80             # the road it may cross,
    default = 100         # and every class not named

Every mistake is an RtsegError naming the file and the key. No torch here.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import fields
from pathlib import Path

from rtseg.errors import RtsegError, type_name
from rtseg.ground import Camera, GridSpec, GroundGrid

INTRINSICS = {"width", "height", "fx", "fy", "cx", "cy", "hfov_deg", "distortion", "lens"}
# ROS's distortion models -> the lens and its number of coefficients
MODELS = {"plumb_bob": ("pinhole", (4, 5)), "rational_polynomial": ("pinhole", (8,)),
          "equidistant": ("fisheye", (4,))}
COEFFICIENTS = {"pinhole": ((0, 4, 5, 8), "OpenCV's k1 k2 p1 p2 [k3 [k4 k5 k6]]"),
                "fisheye": ((0, 4), "the equidistant model's k1 k2 k3 k4")}
MAX_CELLS = 4_000_000  # a grid past this (e.g. 100 x 100 m at 5 cm) costs ~130 MB to set up


def load_ground(path: str | Path) -> GroundGrid:
    """A camera file -> its GroundGrid; an RtsegError naming the file and the key for
    anything missing, unknown or out of range."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RtsegError(f"cannot read camera file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RtsegError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"camera", "mount", "grid", "costs"}
    if unknown:
        raise RtsegError(f"{path}: unknown table(s) {sorted(unknown)}: a camera file has "
                         "[camera], [mount], [grid] and optionally [costs]")
    camera = _camera(path, _table(path, raw, "camera"), _table(path, raw, "mount"))
    grid = _grid(path, _table(path, raw, "grid"))
    costs = _costs(path, _table(path, raw, "costs"))
    default = costs.pop("default", 100)
    try:
        return GroundGrid(camera, grid, tuple(costs.items()), default)
    except RtsegError as exc:
        raise RtsegError(f"{path}: {exc}") from None


def load_grounds(options: tuple[str, ...], names: tuple[str, ...]) -> dict[str, GroundGrid]:
    """`--camera [NAME=]FILE` options -> camera NAME -> its GroundGrid. A FILE without
    ``NAME=`` serves every one of `names` that no ``NAME=FILE`` names; an RtsegError for a
    NAME not among `names`, or named twice."""
    named: dict[str, str] = {}
    everyone: list[str] = []
    for option in options:
        name, sep, file = option.partition("=")
        if not sep or "/" in name or "\\" in name:
            everyone.append(option)
            continue
        if name not in names:
            raise RtsegError(f"--camera {option}: {name} is not one of the cameras here "
                             f"({', '.join(names) or 'none'}); give --camera NAME=FILE for one "
                             "of them, or FILE for all")
        if name in named:
            raise RtsegError(f"--camera {option}: {name} has a camera file already "
                             f"({named[name]})")
        named[name] = file
    if len(everyone) > 1:
        raise RtsegError(f"--camera {everyone[1]}: a second file for every camera (after "
                         f"{everyone[0]}); name the camera: --camera NAME=FILE")
    files = {name: named.get(name, everyone[0] if everyone else None) for name in names}
    loaded = {file: load_ground(file) for file in dict.fromkeys(files.values()) if file}
    return {name: loaded[file] for name, file in files.items() if file}


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
    _check_keys(path, "camera", cam, INTRINSICS | {"camera_info", "crop"})
    _check_keys(path, "mount", mount, {"x", "y", "z", "roll_deg", "pitch_deg", "yaw_deg"})
    if "camera_info" in cam:
        if set(cam) & INTRINSICS:
            raise RtsegError(f"{path}: [camera] camera_info gives the intrinsics: drop "
                             f"{sorted(set(cam) & INTRINSICS)}, or camera_info")
        intrinsics = _camera_info(path, cam["camera_info"])
    else:
        intrinsics = _intrinsics(path, cam)
    if "crop" in cam:
        intrinsics = _cropped(path, intrinsics, cam["crop"])
    z = _number(path, "mount", mount, "z")
    if z <= 0:
        raise RtsegError(f"{path}: [mount] z is the camera's height above the ground and "
                         f"must be positive, got {z}")
    return Camera(**intrinsics, z=z, **{k: _number(path, "mount", mount, k, 0.0)
                                       for k in ("x", "y", "roll_deg", "pitch_deg", "yaw_deg")})


def _intrinsics(path: Path, cam: dict) -> dict:
    """[camera]'s keys -> Camera's intrinsics (width, height, fx, fy, cx, cy, distortion)."""
    width, height = _size(path, "[camera] width and height", cam.get("width"),
                          cam.get("height"))
    lens = cam.get("lens", "pinhole")
    if not isinstance(lens, str) or lens not in COEFFICIENTS:
        raise RtsegError(f"{path}: [camera] lens must be one of {', '.join(COEFFICIENTS)}, "
                         f"got {lens!r}")
    if ("fx" in cam) == ("hfov_deg" in cam):
        raise RtsegError(f"{path}: [camera] needs fx (pixels) or hfov_deg, exactly one")
    if "hfov_deg" in cam:
        hfov, widest = _number(path, "camera", cam, "hfov_deg"), 180 if lens == "pinhole" else 360
        if not 0 < hfov < widest:
            raise RtsegError(f"{path}: [camera] hfov_deg of a {lens} lens must be in (0, "
                             f"{widest}), got {hfov}")
        # a pinhole maps tan(angle) to the radius, an (ideal) equidistant lens the angle
        fx = width / 2 / (math.tan(math.radians(hfov) / 2) if lens == "pinhole"
                          else math.radians(hfov) / 2)
    else:
        fx = _number(path, "camera", cam, "fx")
    fy = _number(path, "camera", cam, "fy", fx)
    distortion = cam.get("distortion", [])
    if not isinstance(distortion, list) or not all(
            isinstance(k, int | float) and not isinstance(k, bool) for k in distortion):
        raise RtsegError(f"{path}: [camera] distortion is a list of numbers "
                         f"({COEFFICIENTS[lens][1]}), got {distortion!r}")
    return _checked(path, "[camera]", width, height, fx, fy,
                    _number(path, "camera", cam, "cx", width / 2),
                    _number(path, "camera", cam, "cy", height / 2), distortion, lens)


def _cropped(path: Path, intrinsics: dict, crop) -> dict:
    """The intrinsics of the box [X, Y, W, H] (W or H 0: to the edge) of the frame they
    describe, as `rtseg run --crop` cuts it: the same focal lengths and distortion, the
    principal point moved by (-X, -Y), the box's size."""
    width, height = intrinsics["width"], intrinsics["height"]
    if not (isinstance(crop, list) and len(crop) == 4 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in crop)):
        raise RtsegError(f"{path}: [camera] crop is the node's --crop as [X, Y, W, H], "
                         f"whole pixels >= 0, got {crop!r}")
    x, y, w, h = crop
    right, bottom = x + w if w else width, y + h if h else height
    if right > width or bottom > height or x >= right or y >= bottom:
        raise RtsegError(f"{path}: [camera] crop {crop} does not fit the {width}x{height} "
                         "(WxH) frame the intrinsics describe")
    return {**intrinsics, "width": right - x, "height": bottom - y,
            "cx": intrinsics["cx"] - x, "cy": intrinsics["cy"] - y}


def _size(path: Path, what: str, width, height) -> tuple[int, int]:
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1 or (
                value != int(value)):
            raise RtsegError(f"{path}: {what} are the image's size in pixels, got "
                             f"{width!r} x {height!r}")
    return int(width), int(height)


def _checked(path: Path, where: str, width: int, height: int, fx: float, fy: float,
             cx: float, cy: float, distortion: list, lens: str) -> dict:
    if fx <= 0 or fy <= 0:
        raise RtsegError(f"{path}: {where} focal lengths must be positive, got {fx}, {fy}")
    counts, names = COEFFICIENTS[lens]
    if len(distortion) not in counts:
        listed = ", ".join(map(str, counts[:-1])) + f" or {counts[-1]}"
        raise RtsegError(f"{path}: {where} distortion of a {lens} lens has {listed} "
                         f"coefficients ({names}), got {len(distortion)}")
    return {"width": width, "height": height, "fx": float(fx), "fy": float(fy),
            "cx": float(cx), "cy": float(cy),
            "distortion": tuple(float(k) for k in distortion), "lens": lens}


def _camera_info(path: Path, name) -> dict:
    """A ROS camera calibration YAML (image_width, image_height, camera_matrix,
    distortion_model, distortion_coefficients) -> Camera's intrinsics."""
    import yaml

    if not isinstance(name, str) or not name:
        raise RtsegError(f"{path}: [camera] camera_info is the path of a ROS camera "
                         "calibration YAML file")
    info_path = path.parent / name
    try:
        info = yaml.safe_load(info_path.read_text())
    except OSError as exc:
        raise RtsegError(f"{path}: cannot read camera_info {info_path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RtsegError(f"{path}: camera_info {info_path} is not valid YAML: {exc}") from None
    try:
        width, height = _size(info_path, "image_width and image_height", info["image_width"],
                              info["image_height"])
        k = [float(v) for v in info["camera_matrix"]["data"]]
        model = info.get("distortion_model") or "plumb_bob"
        coefficients = [float(v) for v in (info.get("distortion_coefficients") or {}).get(
            "data") or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise RtsegError(f"{info_path}: not a ROS camera calibration (image_width, "
                         f"image_height, camera_matrix.data, distortion_coefficients.data): "
                         f"{type_name(exc)} {exc}") from None
    if len(k) != 9:
        raise RtsegError(f"{info_path}: camera_matrix.data has 9 numbers, got {len(k)}")
    if model not in MODELS:
        raise RtsegError(f"{info_path}: distortion_model {model!r} is not supported: "
                         f"{', '.join(MODELS)} (recalibrate with one of them)")
    lens, counts = MODELS[model]
    if coefficients and len(coefficients) not in counts:
        raise RtsegError(f"{info_path}: {model} has {' or '.join(map(str, counts))} "
                         f"distortion coefficients, got {len(coefficients)}")
    return _checked(info_path, "camera_matrix", width, height, k[0], k[4], k[2], k[5],
                    coefficients, lens)


def _costs(path: Path, values: dict) -> dict[str, int]:
    """[costs]: class name -> cost 0 (free) .. 100 (lethal); `default` for the others."""
    for name, cost in values.items():
        if isinstance(cost, bool) or not isinstance(cost, int) or not 0 <= cost <= 100:
            raise RtsegError(f"{path}: [costs] {name} must be a whole number from 0 (free) "
                             f"to 100 (occupied), got {cost!r}")
    return dict(values)


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
    if rows < 1 or cols < 1 or rows * cols > MAX_CELLS:
        raise RtsegError(f"{path}: [grid] makes {rows} x {cols} cells; x_max > x_min, y_max > "
                         f"y_min and at most {MAX_CELLS:,} cells (coarser resolution)")
    return grid
