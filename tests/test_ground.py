"""rtseg.ground: drivable masks -> occupancy grids on the ground, checked against the
synthetic scenes' own road geometry (rtseg.data.synthetic paints a flat road through a
pinhole of known parameters) and against the pinhole formula."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import REPO  # noqa: I001  (tests/ is on sys.path)

from rtseg.camera_file import load_ground, load_grounds
from rtseg.data.synthetic import SceneParams, drivable_mask, render
from rtseg.errors import RtsegError
from rtseg.free_space import default_scan
from rtseg.ground import FREE, OCCUPIED, UNKNOWN, Camera, GridSpec, GroundGrid
from rtseg.ground_draw import FREE_BGR, UNKNOWN_BGR, grid_picture
from rtseg.ros2msg import quaternion

H, W = 360, 640
SCENE = SceneParams(horizon=0.42, vp_x=0.55, road_width=0.8, depth_bottom=5.0,
                    lateral_offset=1.2, lane_count=2, lane_width=3.5, cars=())


def scene_camera(p: SceneParams = SCENE) -> tuple[Camera, float, float]:
    """The pinhole the painter drew `p` through, and the road's edges (y, base frame).

    The painter's rows: nearness d = (v_edge - hy) / (H - hy) sees depth zb / d, g pixels
    per metre at d = 1 (the bottom row): f = g zb, camera height (H - hy) / g; its
    coordinates are pixel edges (OpenCV's centres are 0.5 less); lateral + is right."""
    half = p.lane_count * p.lane_width / 2
    g = p.road_width * W / (2 * half)
    hy, vp = p.horizon * H, p.vp_x * W
    camera = Camera(width=W, height=H, fx=g * p.depth_bottom, fy=g * p.depth_bottom,
                    cx=vp - 0.5, cy=hy - 0.5, z=(H - hy) / g)
    centre_y = -p.lateral_offset  # the road centre, metres left of the camera
    return camera, centre_y - half, centre_y + half


def test_projection_is_the_pinhole_formula():
    cam = Camera(width=W, height=H, fx=500.0, fy=480.0, cx=320.0, cy=170.0, z=1.6)
    (u, v), ahead = cam.project(np.array([10.0, 2.0, 0.0]))
    assert ahead and u == pytest.approx(320 - 500 * 2 / 10)
    assert v == pytest.approx(170 + 480 * 1.6 / 10)
    pitched = replace(cam, pitch_deg=6.0)  # looking down: the horizon rises
    (_, v_far), _ = pitched.project(np.array([1e7, 0.0, 0.0]))
    assert v_far == pytest.approx(170 - 480 * math.tan(math.radians(6.0)), abs=1e-3)
    yawed = replace(cam, yaw_deg=10.0)  # turned left: a point straight ahead moves right
    (u_yaw, _), _ = yawed.project(np.array([1e7, 0.0, 0.0]))
    assert u_yaw == pytest.approx(320 + 500 * math.tan(math.radians(10.0)), abs=1e-3)
    half_size, _ = cam.project(np.array([10.0, 2.0, 0.0]), size=(H // 2, W // 2))
    assert half_size == pytest.approx([(u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5])
    _, behind = cam.project(np.array([-5.0, 0.0, 0.0]))
    assert not behind


def test_grid_of_a_painted_road_puts_the_road_where_it_is():
    image, classes = render(SCENE, H, W)
    camera, right_edge, left_edge = scene_camera()
    grid = GridSpec(x_min=0.0, x_max=40.0, y_min=-12.0, y_max=12.0, resolution=0.2)
    occupancy = GroundGrid(camera, grid).occupancy(drivable_mask(classes))
    assert occupancy.shape == (120, 200) and occupancy.dtype == np.int8
    centres = grid.centres()
    x, y = centres[..., 0], centres[..., 1]
    seen = (x > SCENE.depth_bottom + 0.5) & (x < 30)
    on_road = seen & (y > right_edge + 0.3) & (y < left_edge - 0.3)
    off_road = seen & ((y < right_edge - 0.3) | (y > left_edge + 0.3)) & (np.abs(y) < 0.4 * x)
    assert on_road.sum() > 1000 and off_road.sum() > 1000
    assert (occupancy[on_road] == FREE).mean() > 0.99
    assert (occupancy[off_road] == OCCUPIED).mean() > 0.99
    assert (occupancy[x < SCENE.depth_bottom - 0.5] == UNKNOWN).all()  # under the bottom row
    assert (occupancy[(x > 5) & (np.abs(y) > 1.2 * x)] == UNKNOWN).all()  # out of the view


def test_a_smaller_mask_gives_the_same_grid():
    _, classes = render(SCENE, H, W)
    camera, _, _ = scene_camera()
    ground = GroundGrid(camera, GridSpec(x_min=6.0, x_max=30.0, resolution=0.25))
    full = ground.occupancy(drivable_mask(classes))
    import cv2

    small = cv2.resize(drivable_mask(classes), (W // 2, H // 2), interpolation=cv2.INTER_NEAREST)
    assert (ground.occupancy(small) == full).mean() > 0.97
    assert (ground.occupancy(small) == UNKNOWN).sum() == (full == UNKNOWN).sum()


def test_a_camera_that_sees_no_cell_is_refused():
    camera, _, _ = scene_camera()
    with pytest.raises(RtsegError, match="no cell of the grid"):
        GroundGrid(replace(camera, pitch_deg=-60.0))  # looking at the sky
    with pytest.raises(RtsegError, match="no cell of the grid"):
        GroundGrid(camera, GridSpec(x_min=-40.0, x_max=-2.0))  # behind the robot


def test_occupancy_refuses_a_mask_that_is_not_one():
    ground = GroundGrid(scene_camera()[0])
    with pytest.raises(ValueError, match="uint8"):
        ground.occupancy(np.zeros((H, W, 3), np.uint8))


def write(tmp_path, text: str):
    path = tmp_path / "camera.toml"
    path.write_text(text)
    return path


def test_camera_file_loads(tmp_path):
    ground = load_ground(write(tmp_path, """
[camera]
width = 640
height = 360
hfov_deg = 90.0
cy = 150.0
[mount]
z = 1.4
pitch_deg = 3.0
x = 0.5
[grid]
x_min = 1.0
x_max = 21.0
y_min = -5.0
y_max = 5.0
resolution = 0.5
frame_id = "robot"
"""))
    assert ground.camera.fx == pytest.approx(320.0) and ground.camera.fy == pytest.approx(320.0)
    assert (ground.camera.cx, ground.camera.cy, ground.camera.x) == (320.0, 150.0, 0.5)
    assert ground.grid.shape == (20, 40) and ground.grid.frame_id == "robot"
    assert 0 < ground.visible_fraction() < 1


@pytest.mark.parametrize(("text", "message"), [
    ("[camera]\nwidth = 640\nheight = 360\nfx = 500.0\n", r"\[mount\] needs z"),
    ("[camera]\nwidth = 640\nheight = 360\n[mount]\nz = 1.0\n", "fx .* or hfov_deg"),
    ("[camera]\nwidth = 640\nheight = 360\nfx = 5.0\nhfov_deg = 60\n[mount]\nz = 1.0\n",
     "exactly one"),
    ("[camera]\nwidth = 640\nheight = 360\nfx = 500.0\n[mount]\nz = -1.0\n",
     "height above the ground"),
    ("[camera]\nwidth = 640\nheight = 360\nfx = 500.0\nfocal = 3\n[mount]\nz = 1.0\n",
     r"unknown key\(s\) \['focal'\]"),
    ("[camera]\nwidth = 640\nheight = 360\nfx = 'wide'\n[mount]\nz = 1.0\n",
     "fx must be a number"),
    ("[camera]\nwidth = 640\nheight = 360\nfx = 500.0\n[mount]\nz = 1.0\n"
     "[grid]\nx_min = 10.0\nx_max = 5.0\n", "x_max > x_min"),
    ("[camera]\nwidth = 640\nheight = 360\nfx = 500.0\n[mount]\nz = 1.0\npitch_deg = -80.0\n",
     "no cell of the grid"),
    ("[camera\nwidth = 640\n", "not valid TOML"),
    ("[lens]\nk1 = 0.1\n", r"unknown table\(s\) \['lens'\]"),
])
def test_camera_file_mistakes_are_named(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RtsegError, match=message) as info:
        load_ground(path)
    assert str(path) in str(info.value)


def test_missing_camera_file_is_named(tmp_path):
    with pytest.raises(RtsegError, match="cannot read camera file .*nope.toml"):
        load_ground(tmp_path / "nope.toml")


def run_ground(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtseg", "ground", *args], capture_output=True,
                          text=True, timeout=120)


def test_the_check_command_describes_and_draws_the_grid(tmp_path):
    """`rtseg ground CAMERA --image FRAME --out PNG`: the facts as JSON, and the grid's
    lines on the ground where the pinhole puts them (the 10 m line across the road at
    row cy + fy z / 10); nothing drawn in the sky."""
    camera = REPO / "launch" / "cameras" / "demo.toml"
    ground = load_ground(camera)
    cam = ground.camera
    frame = np.full((cam.height, cam.width, 3), 60, np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    done = run_ground(str(camera), "--image", str(tmp_path / "frame.png"), "--out",
                      str(tmp_path / "check.png"))
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["cells"] == [160, 200] and facts["horizon_row"] == pytest.approx(cam.cy, abs=0.1)
    assert 0 < facts["visible_fraction"] < 1 and facts["hfov_deg"] == pytest.approx(57.2, abs=0.1)
    bottom = cam.z * cam.fy / (cam.height - 0.5 - cam.cy)  # the ground at the bottom row
    assert facts["nearest_ground_ahead_m"] == pytest.approx(bottom, abs=0.05)
    drawn = cv2.imread(str(tmp_path / "check.png"))
    changed = np.abs(drawn.astype(int) - frame).sum(axis=2) > 30
    row = round(cam.cy + cam.fy * cam.z / 10)
    assert changed[row - 1:row + 2, round(cam.cx) - 40:round(cam.cx) + 40].any(axis=0).all()
    assert not changed[:round(cam.cy) - 20].any()
    assert changed.mean() < 0.2


def test_the_check_command_names_its_mistakes(tmp_path):
    camera = str(REPO / "launch" / "cameras" / "demo.toml")
    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((36, 64, 3), np.uint8))
    done = run_ground(camera, "--image", str(tmp_path / "frame.png"))
    assert done.returncode != 0 and "--image FRAME and --out FILE.png go together" in done.stderr
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    done = run_ground(camera, "--image", str(tmp_path / "broken.png"), "--out",
                      str(tmp_path / "x.png"))
    assert done.returncode != 0 and "cannot draw the grid over" in done.stderr
    for out, problem in (("check.xyz", "--out is a .png or .jpg file"),
                         ("no/check.png", "is its folder")):
        done = run_ground(camera, "--image", str(tmp_path / "frame.png"), "--out",
                          str(tmp_path / out))
        assert done.returncode == 1 and problem in done.stderr, done.stderr
    done = run_ground(str(tmp_path / "none.toml"))
    assert done.returncode != 0 and "cannot read camera file" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_readme_consumer_reads_grids_off_a_live_demo_node():
    """The README's consumer snippet, run as written against a real demo node (its
    bundled model): every grid has road (free), roadside (occupied) and unseen cells, and
    is rtseg.ground's grid of a published drivable mask (the demo drives up to cars, so
    what lies straight ahead varies)."""
    from live_node import demo_node  # tests/ is on sys.path

    readme = (REPO / "README.md").read_text()
    snippet = next(block for block in readme.split("```python")[1:]
                   if "load_ground" in block).split("```")[0]
    snippet = textwrap.dedent(snippet).replace("launch/cameras/demo.toml",
                                               str(REPO / "launch" / "cameras" / "demo.toml"))
    grids = []
    with demo_node(image_topic=False) as endpoint:
        last = next(line for line in snippet.splitlines() if "ranges = " in line)
        code = snippet.replace("tcp://127.0.0.1:5555", endpoint).replace(
            last, last + "\n        grids.append((mask, grid, ranges))\n"
            "        if len(grids) == 4: break")
        exec(compile(code, "README.md", "exec"), {"grids": grids})
    ground = load_ground(REPO / "launch" / "cameras" / "demo.toml")
    assert len(grids) == 4
    for mask, grid, ranges in grids:
        assert mask.shape == (360, 640) and grid.shape == ground.grid.shape
        np.testing.assert_array_equal(grid, ground.occupancy(mask))
        assert ranges.shape == default_scan(ground).angles.shape
        assert np.isfinite(ranges).any()  # the road's edges, or a car
        seen = grid[grid != UNKNOWN]
        assert 0.5 < seen.size / grid.size < 0.9
        assert 0.05 < (seen == FREE).mean() < 0.95


def test_the_picture_from_above_has_ahead_up_and_left_on_the_left():
    grid = GridSpec(x_min=0.0, x_max=20.0, y_min=-5.0, y_max=5.0, resolution=0.5)
    occupancy = np.full(grid.shape, OCCUPIED, np.int8)  # (20 rows along y, 40 cols along x)
    occupancy[15, 30] = FREE  # the cell at x = 15.25 m, y = +2.75 m (left)
    occupancy[:, :2] = UNKNOWN  # x < 1 m
    picture = grid_picture(grid, occupancy, 400)  # 10 pixels a cell
    assert picture.shape == (400, 200, 3)
    free = np.argwhere((picture == FREE_BGR).all(axis=2))
    rows, cols = free[:, 0], free[:, 1]
    assert (rows.min(), rows.max()) == (90, 99)  # (20 - 15.5) * 20 .. (20 - 15) * 20 - 1
    assert (cols.min(), cols.max()) == (40, 49)  # (5 - 3) * 20 .. (5 - 2.5) * 20 - 1
    assert (picture[381:398, 150] == UNKNOWN_BGR).all()  # the nearest metre, bottom
    assert (picture[392:400, 100] == 255).all()  # the robot, on the bottom edge at y = 0


LENS = (-0.30, 0.09, 0.001, -0.0005, -0.012)  # barrel, as a wide road camera's


def test_distortion_is_opencvs_model():
    """Projection through a lens = cv2.projectPoints of the same pinhole and lens."""
    cam = replace(scene_camera()[0], distortion=LENS, pitch_deg=4.0, yaw_deg=-3.0)
    ground = np.stack(np.meshgrid(np.linspace(5, 40, 15), np.linspace(-8, 8, 11)), -1)
    points = np.concatenate([ground.reshape(-1, 2), np.zeros((165, 1))], 1)
    pixels, seen = cam.project(points)
    optical = (points - (cam.x, cam.y, cam.z)) @ cam.rotation()
    k = np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]])
    want, _ = cv2.projectPoints(optical, np.zeros(3), np.zeros(3), k, np.array(LENS))
    inside = seen & (pixels[:, 0] > 0) & (pixels[:, 0] < W) & (pixels[:, 1] < H)
    assert inside.sum() > 40
    np.testing.assert_allclose(pixels[inside], want.reshape(-1, 2)[inside], atol=1e-6)


def test_points_beyond_the_lens_field_are_not_folded_back_in():
    """A barrel polynomial turns back past the image's corners: a point far to the side
    lands inside the image by the formula alone. It is out of view."""
    cam = replace(scene_camera()[0], distortion=(-0.12, 0.0, 0.0, 0.0))
    far_side = np.array([[3.0, 8.8, 0.0]])  # 72 degrees to the left, where 1 + k1 r^2 < 0
    (pixel, ), (seen, ) = cam.project(far_side)
    optical = (far_side - (cam.x, cam.y, cam.z)) @ cam.rotation()
    k = np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]])
    folded, _ = cv2.projectPoints(optical, np.zeros(3), np.zeros(3), k, np.array(cam.distortion))
    u, v = folded.reshape(2)
    assert 0 <= u < W and 0 <= v < H  # the bare formula: in the picture
    assert not seen  # but no lens sees 84 degrees off its axis at this focal length


def distort(image: np.ndarray, camera: Camera) -> np.ndarray:
    """What `camera`'s lens makes of a pinhole `image` (same K): each distorted pixel takes
    the pinhole pixel it comes from (cv2.undistortPoints), nearest."""
    k = np.array([[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1]])
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    source = cv2.undistortPoints(np.stack([u, v], -1).reshape(-1, 1, 2), k,
                                 np.array(camera.distortion), P=k).reshape(H, W, 2)
    return cv2.remap(image, source[..., 0], source[..., 1], cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def test_a_road_seen_through_a_lens_lands_where_it_is():
    """The painted road through a barrel lens: with the lens in the camera file the grid's
    free cells end at the road's edges (within a cell and a pixel), from 6 to 20 m ahead;
    with the lens ignored, the edges near the robot land over a metre off."""
    _, classes = render(SCENE, H, W)
    camera, right_edge, left_edge = scene_camera()
    lens = replace(camera, distortion=LENS)
    drivable = distort(drivable_mask(classes), lens)
    grid = GridSpec(x_min=0.0, x_max=30.0, y_min=-12.0, y_max=12.0, resolution=0.2)
    xs, ys = grid.centres()[0, :, 0], grid.centres()[:, 0, 1]

    def edge_error_m(cam: Camera) -> float:
        """The largest distance between the free cells' outermost centres and the road's
        edges, over the grid's columns from 6 to 20 m ahead."""
        occupancy = GroundGrid(cam, grid).occupancy(drivable)
        errors = [0.0]
        for column in np.flatnonzero((xs > 6) & (xs < 20)):
            free = ys[occupancy[:, column] == FREE]
            errors.append(max(abs(free.min() - right_edge), abs(free.max() - left_edge)))
        return max(errors)

    assert edge_error_m(lens) <= 0.3
    assert edge_error_m(camera) > 1.0  # the lens ignored


CAMERA_INFO = """image_width: 1280
image_height: 720
camera_name: front
camera_matrix:
  rows: 3
  cols: 3
  data: [912.5, 0.0, 641.2, 0.0, 910.8, 362.9, 0.0, 0.0, 1.0]
distortion_model: {model}
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.31, 0.11, 0.0004, -0.0002, -0.018]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [850.1, 0.0, 640.0, 0.0, 0.0, 870.3, 360.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_a_ros_camera_calibration_gives_the_intrinsics(tmp_path):
    """[camera] camera_info = a ROS camera_calibration YAML beside the file: size, K and
    the plumb_bob lens from it (not the rectified projection matrix)."""
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "front.yaml").write_text(CAMERA_INFO.format(model="plumb_bob"))
    ground = load_ground(write(tmp_path, '[camera]\ncamera_info = "calib/front.yaml"\n'
                                         "[mount]\nz = 1.3\npitch_deg = 2.0\n"))
    cam = ground.camera
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (
        1280, 720, 912.5, 910.8, 641.2, 362.9)
    assert cam.distortion == (-0.31, 0.11, 0.0004, -0.0002, -0.018)
    toml = load_ground(write(tmp_path, "[camera]\nwidth = 1280\nheight = 720\nfx = 912.5\n"
                                       "fy = 910.8\ncx = 641.2\ncy = 362.9\n"
                                       "distortion = [-0.31, 0.11, 0.0004, -0.0002, -0.018]\n"
                                       "[mount]\nz = 1.3\npitch_deg = 2.0\n"))
    assert toml.camera == cam


@pytest.mark.parametrize(("camera", "info", "message"), [
    ('camera_info = "front.yaml"\nfx = 900.0', "plumb_bob",
     r"camera_info gives the intrinsics: drop \['fx'\]"),
    ('camera_info = "front.yaml"', "equidistant", "distortion_model 'equidistant' is not "
     "supported: plumb_bob or rational_polynomial"),
    ('camera_info = "front.yaml"', "rational_polynomial", "rational_polynomial has 8 "
     "distortion coefficients, got 5"),
    ('camera_info = "gone.yaml"', "plumb_bob", "cannot read camera_info .*gone.yaml"),
    ("width = 640\nheight = 360\nfx = 500.0\ndistortion = [0.1, 0.2, 0.3]", "plumb_bob",
     "distortion has 4, 5 or 8 coefficients"),
    ("width = 640\nheight = 360\nfx = 500.0\ndistortion = 0.1", "plumb_bob",
     "distortion is a list of numbers"),
])
def test_camera_calibration_mistakes_are_named(tmp_path, camera, info, message):
    (tmp_path / "front.yaml").write_text(CAMERA_INFO.format(model=info))
    with pytest.raises(RtsegError, match=message):
        load_ground(write(tmp_path, f"[camera]\n{camera}\n[mount]\nz = 1.3\n"))


def test_a_file_that_is_no_calibration_is_named(tmp_path):
    (tmp_path / "front.yaml").write_text("image_width: 640\nfocal: 3\n")
    with pytest.raises(RtsegError, match="front.yaml: not a ROS camera calibration"):
        load_ground(write(tmp_path, '[camera]\ncamera_info = "front.yaml"\n[mount]\nz = 1.0\n'))


def test_a_mask_of_another_shape_is_warned_of_once(caplog):
    ground = GroundGrid(replace(scene_camera()[0], z=2.0))  # a camera of its own: no cache
    with caplog.at_level("WARNING", logger="rtseg.ground"):
        ground.occupancy(np.zeros((180, 320), np.uint8))  # 640x360 halved: the same shape
        assert not caplog.records
        for _ in range(3):
            ground.occupancy(np.zeros((256, 512), np.uint8))
    assert len(caplog.records) == 1
    assert "a 512x256 mask has another shape than the camera file's 640x360" in caplog.text


def rotation_of(q) -> np.ndarray:
    """The rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@pytest.mark.parametrize("angles", [(0, 0, 0), (0, 8, 0), (3, -12, 40), (-170, 5, 178),
                                    (90, 89, -90), (0, 0, 180)])
def test_the_mount_as_a_quaternion(angles):
    """The camera's rotation as a ROS quaternion: a level camera's optical frame is the
    well-known (-0.5, 0.5, -0.5, 0.5) of base -> camera_optical; any mount's quaternion
    rotates like its matrix."""
    roll, pitch, yaw = angles
    cam = replace(scene_camera()[0], roll_deg=roll, pitch_deg=pitch, yaw_deg=yaw)
    q = quaternion(cam.rotation())
    assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
    np.testing.assert_allclose(rotation_of(q), cam.rotation(), atol=1e-12)
    if angles == (0, 0, 0):
        assert q == pytest.approx((-0.5, 0.5, -0.5, 0.5))


def test_camera_options_name_cameras_or_serve_them_all(tmp_path):
    """--camera FILE serves every camera no --camera NAME=FILE names, whatever the order;
    one file is loaded once however many cameras share it."""
    demo = str(REPO / "launch" / "cameras" / "demo.toml")
    other = write(tmp_path, "[camera]\nwidth = 640\nheight = 360\nhfov_deg = 90\n"
                            "[mount]\nz = 1.0\n")
    grounds = load_grounds((f"rear={other}", demo), ("front", "rear", "side"))
    assert grounds["rear"].camera.z == 1.0
    assert grounds["front"] is grounds["side"] and grounds["front"].camera.z == 2.07
    assert set(load_grounds((f"rear={other}",), ("front", "rear"))) == {"rear"}
    with pytest.raises(RtsegError, match="rear has a camera file already"):
        load_grounds((f"rear={other}", f"rear={demo}"), ("front", "rear"))
    with pytest.raises(RtsegError, match="a second file for every camera"):
        load_grounds((demo, str(other)), ("front", "rear"))


def test_the_check_command_segments_the_frame_with_a_model(tmp_path):
    """--model demo: the frame's overlay by the bundled model under the grid's lines, and
    on its right that model's drivable area on the ground (rtseg.Segmenter's mask through
    the camera file), pixel for pixel."""
    from rtseg import Segmenter

    camera = REPO / "launch" / "cameras" / "demo.toml"
    image, _ = render(synthetic_scene_0(), H, W)
    frame = np.ascontiguousarray(image[..., ::-1])
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    done = run_ground(str(camera), "--image", str(tmp_path / "frame.png"), "--out",
                      str(tmp_path / "check.png"), "--model", "demo")
    assert done.returncode == 0, done.stderr
    ground = load_ground(camera)
    with Segmenter("demo") as segmenter:
        occupancy = ground.occupancy(segmenter(frame).drivable)
    picture = grid_picture(ground.grid, occupancy, H)
    drawn = cv2.imread(str(tmp_path / "check.png"))
    assert drawn.shape == (H, W + picture.shape[1], 3)
    np.testing.assert_array_equal(drawn[:, W:], picture)
    seen = occupancy[occupancy != UNKNOWN]
    assert json.loads(done.stdout)["free_fraction"] == pytest.approx((seen == FREE).mean(),
                                                                     abs=1e-4)
    done = run_ground(str(camera), "--model", "demo")
    assert done.returncode == 1 and "--model segments the frame of --image" in done.stderr


def synthetic_scene_0():
    """The demo's first scene (launch/cameras/demo.toml is its camera)."""
    from rtseg.data.synthetic import random_params

    return random_params(np.random.default_rng(0))
