"""rtseg.camera_file: camera files (TOML, or a ROS camera calibration YAML beside one) and
--camera options; every mistake is one line naming the file and the key."""

from __future__ import annotations

import re

import pytest
from conftest import REPO  # noqa: I001  (tests/ is on sys.path)

from rtseg.camera_file import load_ground, load_grounds
from rtseg.errors import RtsegError


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
    ('camera_info = "front.yaml"', "ftheta", "distortion_model 'ftheta' is not "
     "supported: plumb_bob, rational_polynomial, equidistant"),
    ('camera_info = "front.yaml"', "equidistant", "equidistant has 4 "
     "distortion coefficients, got 5"),
    ('camera_info = "front.yaml"', "rational_polynomial", "rational_polynomial has 8 "
     "distortion coefficients, got 5"),
    ('camera_info = "gone.yaml"', "plumb_bob", "cannot read camera_info .*gone.yaml"),
    ("width = 640\nheight = 360\nfx = 500.0\ndistortion = [0.1, 0.2, 0.3]", "plumb_bob",
     "distortion of a pinhole lens has 0, 4, 5 or 8 coefficients"),
    ('lens = "fisheye"\nwidth = 640\nheight = 360\nfx = 300.0\ndistortion = [0.1, 0, 0, 0, 0]',
     "plumb_bob", "distortion of a fisheye lens has 0 or 4 coefficients .*k1 k2 k3 k4.*got 5"),
    ('lens = "wide"\nwidth = 640\nheight = 360\nfx = 300.0', "plumb_bob",
     "lens must be one of pinhole, fisheye, got 'wide'"),
    ("width = 640\nheight = 360\nhfov_deg = 190.0", "plumb_bob",
     r"hfov_deg of a pinhole lens must be in \(0, 180\), got 190"),
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


def test_costs_make_a_grid_of_costs(tmp_path):
    ground = load_ground(write(tmp_path, "[camera]\nwidth = 640\nheight = 360\nfx = 500.0\n"
                                         "[mount]\nz = 1.0\n[costs]\nsidewalk = 0\nroad = 80\n"
                                         "default = 90\n"))
    assert ground.costs == {"sidewalk": 0, "road": 80} and ground.default_cost == 90
    assert list(ground.cost_lut(("road", "sidewalk", "sky"))[[0, 1, 2, 3, 255]]) == [
        80, 0, 90, -1, -1]
    for bad in ("150", "-1", "0.5", "'cheap'", "true"):
        with pytest.raises(RtsegError, match=r"\[costs\] road must be a whole number from 0"):
            load_ground(write(tmp_path, "[camera]\nwidth = 640\nheight = 360\nfx = 500.0\n"
                                        f"[mount]\nz = 1.0\n[costs]\nroad = {bad}\n"))


def test_a_grid_too_fine_is_refused_before_it_is_built(tmp_path):
    with pytest.raises(RtsegError, match="makes 4000 x 4000 cells.*at most 4,000,000"):
        load_ground(write(tmp_path, "[camera]\nwidth = 640\nheight = 360\nfx = 500.0\n"
                                    "[mount]\nz = 1.0\n[grid]\nx_min = 0.0\nx_max = 40.0\n"
                                    "y_min = -20.0\ny_max = 20.0\nresolution = 0.01\n"))


CROPPED = """
[camera]
width = 640
height = 360
fx = 400.0
cx = 330.0
cy = 170.0
distortion = [-0.2, 0.05, 0.001, -0.002]
{crop}
[mount]
z = 1.4
pitch_deg = 8.0
[grid]
x_min = 2.0
x_max = 12.0
y_min = -4.0
y_max = 4.0
resolution = 0.5
"""


def test_a_crop_in_the_camera_file_describes_the_nodes_box(tmp_path):
    """[camera] crop = the node's --crop: each point on the ground falls on the pixel of
    the box that the whole frame's pixel becomes once cropped (u - X, v - Y), at the box's
    size, distortion included."""
    import numpy as np

    whole = load_ground(write(tmp_path, CROPPED.format(crop="")))
    box = load_ground(write(tmp_path, CROPPED.format(crop="crop = [40, 100, 0, 200]")))
    assert (box.camera.width, box.camera.height) == (600, 200)
    assert (box.camera.cx, box.camera.cy) == (290.0, 70.0)
    points = np.concatenate([whole.grid.centres().reshape(-1, 3)[::7], [[5.0, 1.0, 0.0]]])
    full_px, ahead = whole.camera.project(points)
    box_px, ahead_box = box.camera.project(points)
    np.testing.assert_allclose(box_px[ahead], full_px[ahead] - (40, 100), atol=1e-6)
    assert (ahead == ahead_box).all() and ahead.any()


@pytest.mark.parametrize("crop, problem", [
    ("[40, 100, 0]", "crop is the node's --crop as [X, Y, W, H]"),
    ("[0, -1, 0, 0]", "crop is the node's --crop"),
    ("[0, 0, 700, 0]", "does not fit the 640x360 (WxH) frame"),
])
def test_a_bad_crop_names_the_file_and_the_key(tmp_path, crop, problem):
    with pytest.raises(RtsegError, match=re.escape(problem)):
        load_ground(write(tmp_path, CROPPED.format(crop=f"crop = {crop}")))
