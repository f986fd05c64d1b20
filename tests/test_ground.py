"""rtseg.ground: drivable masks -> occupancy grids on the ground, checked against the
synthetic scenes' own road geometry (rtseg.data.synthetic paints a flat road through a
pinhole of known parameters) and against the pinhole formula."""

from __future__ import annotations

import math
import textwrap
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import REPO  # noqa: I001  (tests/ is on sys.path)

from rtseg.camera_file import load_ground
from rtseg.data.synthetic import CLASSES, SceneParams, drivable_mask, render
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


def test_a_grid_of_costs_puts_each_class_where_it_is():
    """[costs]: the painted scene's classes mask -> road 0, sidewalk 60, the rest 100, and
    a pixel without a prediction (255) unknown."""
    _, classes = render(SCENE, H, W)
    camera, right_edge, left_edge = scene_camera()
    grid = GridSpec(x_min=0.0, x_max=30.0, y_min=-12.0, y_max=12.0, resolution=0.2)
    ground = GroundGrid(camera, grid, costs=(("road", 0), ("lane_marking", 0),
                                             ("sidewalk", 60)))
    unpredicted = classes.copy()
    unpredicted[:, : W // 4] = 255
    costs = ground.cost_grid(unpredicted, CLASSES)
    x, y = grid.centres()[..., 0], grid.centres()[..., 1]
    in_view = ground.occupancy(np.zeros((H, W), np.uint8)) != UNKNOWN
    seen = in_view & (x > SCENE.depth_bottom + 0.5) & (x < 25) & (y < 0.4 * x)
    kerb = 0.25 + 0.3  # the painter's kerb is sidewalk too; and a margin
    on_road = seen & (y > right_edge + 0.3) & (y < left_edge - 0.3)
    right_walk = seen & (y < right_edge - kerb) & (y > right_edge - SCENE.sidewalk[1] + 0.3)
    assert (costs[on_road] == 0).mean() > 0.99
    assert right_walk.sum() > 300 and (costs[right_walk] == 60).mean() > 0.98
    assert set(np.unique(costs[seen]).tolist()) == {0, 60, 100}
    marker = np.zeros((H, W), np.uint8)
    marker[:, : W // 4] = 1
    left_quarter = ground.occupancy(marker) == FREE  # the cells seen in those pixels
    assert left_quarter.sum() > 100
    assert (costs[left_quarter] == UNKNOWN).all()
    assert (ground.cost_grid(classes, CLASSES)[left_quarter] != UNKNOWN).all()
