"""Fisheye lenses on the ground (rtseg.ground's equidistant model): checked against
OpenCV's cv2.fisheye, against a ground truth painted by casting each pixel's ray onto the
ground (the inverse model solved here by Newton's method, independently of rtseg's), and
through camera files and ROS camera calibrations."""

from __future__ import annotations

import math
import textwrap
from dataclasses import replace

import cv2
import numpy as np
import pytest

from rtseg.camera_file import load_ground
from rtseg.free_space import default_scan
from rtseg.ground import FREE, OCCUPIED, UNKNOWN, Camera, GridSpec, GroundGrid
from rtseg.ground_draw import describe
from rtseg.protocol import MaskHeader
from rtseg.ros2msg import camera_info_to_ros

K = (-0.04, 0.01, -0.006, 0.001)  # an equidistant lens: 238 deg across 1280 columns at fx 350
FISHEYE = Camera(width=1280, height=800, fx=350.0, fy=350.0, cx=640.0, cy=400.0, z=1.0,
                 pitch_deg=20.0, distortion=K, lens="fisheye")
LANE = 1.75  # half a lane's width: the ground truth's drivable strip is |y| < LANE


def _opencv(cam: Camera, points: np.ndarray) -> np.ndarray:
    """cv2.fisheye.projectPoints of base-frame points (N, 3) -> pixels (N, 2)."""
    r = cam.rotation()  # optical axes in the base frame
    rvec, _ = cv2.Rodrigues(r.T)
    tvec = -r.T @ np.array([cam.x, cam.y, cam.z])
    k = np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]])
    pixels, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), rvec, tvec, k,
                                          np.array(cam.distortion))
    return pixels.reshape(-1, 2)


def test_projection_is_opencvs_fisheye_model():
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(0.5, 30, 500), rng.uniform(-15, 15, 500),
                              rng.uniform(-0.5, 3, 500)])
    pixels, seen = FISHEYE.project(points)
    depth = (points - (0, 0, FISHEYE.z)) @ FISHEYE.rotation()[:, 2]
    front = depth > 0.1  # cv2.fisheye takes rays in front of the image plane only
    assert seen[front].all() and front.sum() > 400
    np.testing.assert_allclose(pixels[front], _opencv(FISHEYE, points[front]), atol=1e-6)


def pixel_rays(cam: Camera) -> np.ndarray:
    """(H, W, 3): each pixel centre's ray in the base frame, the equidistant model inverted
    by Newton's method on theta (1 + k1 t^2 + ...) = r."""
    u, v = np.meshgrid(np.arange(cam.width) + 0.0, np.arange(cam.height) + 0.0)
    a, b = (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy
    radius = np.hypot(a, b)
    k1, k2, k3, k4 = cam.distortion
    theta = radius.copy()
    for _ in range(30):
        t2 = theta * theta
        f = theta * (1 + k1 * t2 + k2 * t2**2 + k3 * t2**3 + k4 * t2**4) - radius
        df = 1 + 3 * k1 * t2 + 5 * k2 * t2**2 + 7 * k3 * t2**3 + 9 * k4 * t2**4
        theta -= f / df
    safe = np.where(radius > 0, radius, 1.0)
    optical = np.stack([np.sin(theta) * a / safe, np.sin(theta) * b / safe, np.cos(theta)], -1)
    return optical @ cam.rotation().T


def lane_mask(cam: Camera) -> np.ndarray:
    """(H, W) uint8: 1 where the pixel's ray meets the ground within the lane, else 0."""
    rays = pixel_rays(cam)
    down = rays[..., 2] < -1e-6
    t = np.where(down, cam.z / np.where(down, -rays[..., 2], 1.0), 0.0)
    y = cam.y + t * rays[..., 1]
    return (down & (np.abs(y) < LANE)).astype(np.uint8)


def test_a_lane_seen_through_a_fisheye_lands_where_it_is_on_the_ground():
    """The grid of a mask painted by casting rays: free inside the lane, occupied outside
    it, beside the robot too (rays more than 90 deg off the axis, behind the image
    plane), away from the lane's edges by a cell and a pixel's footprint."""
    grid = GridSpec(x_min=-1.0, x_max=8.0, y_min=-4.0, y_max=4.0, resolution=0.05)
    occupancy = GroundGrid(FISHEYE, grid).occupancy(lane_mask(FISHEYE))
    centres = grid.centres()
    seen = occupancy != UNKNOWN
    inner = np.abs(centres[..., 1]) < LANE - 0.1
    outer = np.abs(centres[..., 1]) > LANE + 0.1
    assert (occupancy[seen & inner] == FREE).all() and (occupancy[seen & outer] == OCCUPIED).all()
    optical = (centres - (0, 0, FISHEYE.z)) @ FISHEYE.rotation()
    behind = seen & (optical[..., 2] < 0)  # off the axis by more than 90 deg
    assert (behind & inner).sum() > 100 and (behind & outer).sum() > 100
    theta = np.degrees(np.arctan2(np.hypot(optical[..., 0], optical[..., 1]), optical[..., 2]))
    assert theta[seen].max() <= math.degrees(FISHEYE.field_angle()) + 1e-9
    assert seen.mean() > 0.8


def test_a_lens_that_folds_back_sees_nothing_beyond_its_fold():
    """theta (1 - 0.2 theta^2) peaks at theta = 1.29 rad: a ray further off the axis
    would land back inside the picture; the camera says it is out of view."""
    cam = replace(FISHEYE, distortion=(-0.2, 0.0, 0.0, 0.0), pitch_deg=0.0)
    fold = 1 / math.sqrt(0.6)
    assert cam.field_angle() == pytest.approx(fold, abs=1e-3)
    for theta, expected in ((fold - 0.05, True), (fold + 0.3, False)):
        point = (cam.x + math.cos(theta), cam.y - math.sin(theta), cam.z)  # to the right
        (u, _), seen = cam.project(np.array(point))
        assert seen == expected and 0 <= u < cam.width


def test_the_field_of_view_is_the_lens_s():
    """An ideal equidistant lens whose image is 180 deg wide: its scan spans 180 deg, its
    description says so; with K its image reaches further."""
    ideal = replace(FISHEYE, distortion=(), fx=640 / (math.pi / 2), fy=400.0, cx=639.5,
                    pitch_deg=0.0)
    assert ideal.horizontal_field() == pytest.approx((math.pi / 2, math.pi / 2))
    spec = default_scan(GroundGrid(replace(ideal, pitch_deg=30.0), GridSpec(x_min=-3.0)))
    assert spec.angle_min == pytest.approx(-math.pi / 2, abs=0.01)
    assert spec.angle_max == pytest.approx(math.pi / 2, abs=0.01)
    assert describe(GroundGrid(replace(ideal, pitch_deg=30.0)))["hfov_deg"] == pytest.approx(
        180.0, abs=0.1)
    assert math.degrees(sum(FISHEYE.horizontal_field())) > 200


def test_fisheye_camera_files_and_ros_calibrations(tmp_path):
    """lens = "fisheye" in [camera] (hfov_deg: an equidistant lens's fx), and a ROS
    calibration with distortion_model equidistant, give the same camera, published again
    as an equidistant CameraInfo."""
    (tmp_path / "fish.yaml").write_text(textwrap.dedent(f"""\
        image_width: 1280
        image_height: 800
        camera_matrix:
          rows: 3
          cols: 3
          data: [350.0, 0.0, 640.0, 0.0, 350.0, 400.0, 0.0, 0.0, 1.0]
        distortion_model: equidistant
        distortion_coefficients:
          rows: 1
          cols: 4
          data: {list(K)}
        """))
    mount_grid = "[mount]\nz = 1.0\npitch_deg = 20.0\n[grid]\nx_min = -1.0\nx_max = 8.0\n"
    (tmp_path / "a.toml").write_text(f'[camera]\ncamera_info = "fish.yaml"\n{mount_grid}')
    (tmp_path / "b.toml").write_text(
        f'[camera]\nlens = "fisheye"\nwidth = 1280\nheight = 800\nfx = 350.0\n'
        f"distortion = {list(K)}\n{mount_grid}")
    from_info, from_toml = load_ground(tmp_path / "a.toml"), load_ground(tmp_path / "b.toml")
    assert from_info.camera == from_toml.camera == FISHEYE
    header = MaskHeader(topic="front/drivable", v=1, kind="drivable", seq=1, stamp_ns=5,
                        frame_id="front", width=640, height=400, encoding="mono8",
                        classes=("x",), model="")
    info = camera_info_to_ros(header, FISHEYE)
    assert info["distortion_model"] == "equidistant" and info["d"] == list(K)
    assert info["k"][0] == pytest.approx(175.0) and info["k"][2] == pytest.approx(319.75)
    (tmp_path / "c.toml").write_text(f'[camera]\nlens = "fisheye"\nwidth = 1280\nheight = 800\n'
                                     f"hfov_deg = 190.0\n{mount_grid}")
    assert load_ground(tmp_path / "c.toml").camera.fx == pytest.approx(
        640 / math.radians(95.0))
