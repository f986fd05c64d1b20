"""rtseg.free_space: the grid's free space as a laser scan, against walls and unseen ground
drawn into grids, and against the synthetic scenes' painted road (rtseg.ground)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from test_ground import SCENE, H, W, scene_camera  # noqa: I001  (tests/ is on sys.path)

from rtseg.data.synthetic import drivable_mask, render
from rtseg.free_space import ScanSpec, default_scan, scan_ranges, surround_scan
from rtseg.ground import FREE, OCCUPIED, UNKNOWN, GridSpec, GroundGrid

GRID = GridSpec(x_min=2.0, x_max=30.0, y_min=-10.0, y_max=10.0, resolution=0.1)
SPEC = ScanSpec(-0.5, 0.5, 0.05, 20.0)


def free_grid() -> np.ndarray:
    return np.full(GRID.shape, FREE, np.int8)


def test_a_wall_ahead_is_at_its_distance_on_every_beam():
    """Occupied from x = 10 m on: each beam returns 10 / cos(angle), to within its half-cell
    sampling (never short of the wall)."""
    grid = free_grid()
    grid[:, round((10.0 - GRID.x_min) / GRID.resolution):] = OCCUPIED
    ranges = scan_ranges(GRID, grid, SPEC)
    want = 10.0 / np.cos(SPEC.angles)
    assert ranges.dtype == np.float32 and ranges.shape == (21,)
    assert np.all(ranges >= want - 1e-4) and np.all(ranges < want + GRID.resolution / 2 + 1e-4)


def test_free_to_range_max_is_inf_and_unseen_ground_is_nan():
    grid = free_grid()
    grid[: GRID.shape[0] // 2, 100:] = UNKNOWN  # the right half unseen from x = 12 m
    ranges = scan_ranges(GRID, grid, SPEC)
    right, left = SPEC.angles < -0.01, SPEC.angles > 0.01
    assert np.isinf(ranges[left]).all() and (ranges[left] > 0).all()
    assert np.isnan(ranges[right]).all()


def test_the_blind_ground_before_the_first_seen_cell_is_skipped():
    """The camera sees the ground from 8 m: the unknown cells before it are not a reason to
    give up on a beam; an obstacle at 15 m is found."""
    grid = free_grid()
    grid[:, : round((8.0 - GRID.x_min) / GRID.resolution)] = UNKNOWN
    grid[:, round((15.0 - GRID.x_min) / GRID.resolution):] = OCCUPIED
    ranges = scan_ranges(GRID, grid, ScanSpec(0.0, 0.0, 0.1, 20.0))
    assert ranges[0] == pytest.approx(15.0, abs=GRID.resolution / 2)
    nothing_seen = np.full(GRID.shape, UNKNOWN, np.int8)
    assert np.isnan(scan_ranges(GRID, nothing_seen, SPEC)).all()


def test_the_default_scan_spans_the_camera_and_stays_on_the_grid():
    camera = scene_camera()[0]
    ground = GroundGrid(camera, GRID)
    spec = default_scan(ground)
    assert spec.angle_min <= -math.atan2(W - 0.5 - camera.cx, camera.fx) < spec.angle_min + 0.01
    assert spec.angle_max >= math.atan2(camera.cx + 0.5, camera.fx) > spec.angle_max - 0.01
    edge = min(GRID.y_max / math.sin(spec.angle_max), GRID.y_min / math.sin(spec.angle_min))
    assert spec.range_max == pytest.approx(edge)
    turned = default_scan(GroundGrid(replace(camera, yaw_deg=10.0), GRID))
    assert turned.angle_min == pytest.approx(spec.angle_min + math.radians(10.0), abs=0.01)


def test_a_surround_scan_reaches_as_far_as_the_grid_under_the_cameras_fields():
    """All round, but range_max only from the bearings some camera's field spans: two
    cameras yawed 20 deg left and right on a grid ahead of the robot (x from 2 m, so a
    beam behind has no grid at all) reach as far as the grid runs under their outermost
    beams, not 0 m; a bearing no camera spans runs off the grid before that: nan, not
    free, even on a grid that is free everywhere."""
    camera = scene_camera()[0]
    left, right = (default_scan(GroundGrid(replace(camera, yaw_deg=yaw), GRID))
                   for yaw in (20.0, -20.0))
    spec = surround_scan([GroundGrid(replace(camera, yaw_deg=yaw), GRID) for yaw in (20, -20)])
    assert len(spec.angles) == 720 and spec.angle_min == -math.pi
    edge = min(GRID.y_max / math.sin(left.angle_max), GRID.y_min / math.sin(right.angle_min))
    assert spec.range_max == pytest.approx(edge, rel=1e-3)
    ranges = scan_ranges(GRID, free_grid(), spec)
    outside = (spec.angles < right.angle_min - 0.1) | (spec.angles > left.angle_max + 0.1)
    assert np.isnan(ranges[outside]).all() and np.isinf(ranges[np.abs(spec.angles) < 0.1]).all()


def test_the_painted_road_edges_come_back_as_ranges():
    """The synthetic road through its pinhole: beams that cross a road edge return the
    distance at which they cross it (within two cells along the beam)."""
    _, classes = render(SCENE, H, W)
    camera, right_edge, left_edge = scene_camera()
    ground = GroundGrid(camera, GRID)
    spec = default_scan(ground)
    ranges = scan_ranges(GRID, ground.occupancy(drivable_mask(classes)), spec)
    checked = 0
    for angle, got in zip(spec.angles, ranges):
        edge = right_edge if angle < 0 else left_edge
        crossing = edge / math.sin(angle) if abs(angle) > 1e-9 else math.inf
        if 8.0 < crossing < 0.9 * spec.range_max and abs(angle) > math.radians(10):
            assert got == pytest.approx(crossing, abs=2 * GRID.resolution / abs(math.sin(angle)))
            checked += 1
    assert checked > 20


def test_a_grid_of_costs_stops_beams_at_the_lethal_cost():
    """Costs below `lethal` are crossed (a sidewalk robot's road), from it on they stop."""
    grid = free_grid()
    grid[:, round((8.0 - GRID.x_min) / GRID.resolution):] = 60
    grid[:, round((15.0 - GRID.x_min) / GRID.resolution):] = OCCUPIED
    ahead = ScanSpec(0.0, 0.0, 0.1, 20.0)
    assert scan_ranges(GRID, grid, ahead)[0] == pytest.approx(15.0, abs=GRID.resolution / 2)
    assert scan_ranges(GRID, grid, ahead, lethal=50)[0] == pytest.approx(
        8.0, abs=GRID.resolution / 2)
