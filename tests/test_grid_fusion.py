"""Several cameras on one grid (rtseg.grid_fusion): the fusion rule, its age limit and
its refusals; a front and a rear fisheye fused into one surround grid and its laser scan
all round (the lanes painted by casting each pixel's ray, as in test_fisheye); and `rtseg
record --fuse` on a live two-camera node, each /grid the fusion of the cameras' recorded
grids and each /scan that grid's."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from live_node import demo_node
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from test_fisheye import FISHEYE, LANE, lane_mask

from rtseg.camera_file import load_ground
from rtseg.errors import RtsegError
from rtseg.free_space import scan_ranges
from rtseg.grid_fusion import MAX_AGE_S, GridFusion, fuse
from rtseg.ground import FREE, OCCUPIED, UNKNOWN, GridSpec, GroundGrid
from rtseg.record import RecordConfig, record

DEMO_CAMERA = Path(__file__).resolve().parents[1] / "launch" / "cameras" / "demo.toml"


def test_the_highest_known_value_wins():
    a = np.array([[-1, -1, 0, 0, 100, 30]], np.int8)
    b = np.array([[-1, 0, 0, 100, 0, 70]], np.int8)
    np.testing.assert_array_equal(fuse([a, b]), [[-1, 0, 0, 100, 100, 70]])
    np.testing.assert_array_equal(fuse([a]), a)
    assert fuse([a, b]) is not a


def test_a_camera_that_stops_falls_out_of_the_fusion():
    ground = load_ground(DEMO_CAMERA)
    fusion = GridFusion({"front": ground, "rear": ground})
    shape = ground.grid.shape
    free, wall = np.zeros(shape, np.int8), np.full(shape, OCCUPIED, np.int8)
    t0 = 10**18
    assert (fusion.update("rear", t0, wall) == OCCUPIED).all()
    assert (fusion.update("front", t0 + 10**8, free) == OCCUPIED).all()  # 0.1 s apart
    late = t0 + round(MAX_AGE_S * 1e9) + 1  # the rear's grid is now too old
    assert (fusion.update("front", late, free) == FREE).all()
    with pytest.raises(KeyError, match="side is not one of the fused cameras"):
        fusion.update("side", late, free)


def test_fusion_needs_two_cameras_on_one_grid():
    ground = load_ground(DEMO_CAMERA)
    with pytest.raises(RtsegError, match="two or more .*got 1"):
        GridFusion({"front": ground})
    other = GroundGrid(ground.camera, replace(ground.grid, resolution=0.25))
    with pytest.raises(RtsegError, match=r"one \[grid\] in every camera file.*front: .*0.2 m.*"
                                         r"rear: .*0.25 m"):
        GridFusion({"front": ground, "rear": other})


SURROUND = GridSpec(x_min=-8.0, x_max=8.0, y_min=-4.0, y_max=4.0, resolution=0.05)


@cache
def front_and_rear() -> tuple[list[np.ndarray], GridFusion, np.ndarray]:
    """A front and a rear fisheye over a lane on SURROUND: each camera's grid, their
    fusion and the fused grid."""
    front = replace(FISHEYE, x=0.5)
    rear = replace(FISHEYE, x=-0.5, yaw_deg=180.0)
    grids = [GroundGrid(cam, SURROUND).occupancy(lane_mask(cam)) for cam in (front, rear)]
    fusion = GridFusion({"front": GroundGrid(front, SURROUND),
                         "rear": GroundGrid(rear, SURROUND)})
    fusion.update("front", 0, grids[0])
    return grids, fusion, fusion.update("rear", 1000, grids[1])


def test_a_front_and_a_rear_fisheye_make_one_surround_grid():
    """Each fisheye sees its half and some of the sides; fused, the lane is free and its
    verges occupied ahead and behind, and no cell the cameras agree on changes."""
    grids, _, surround = front_and_rear()
    grid = SURROUND
    seen = [g != UNKNOWN for g in grids]
    assert (surround != UNKNOWN).mean() > max(s.mean() for s in seen) + 0.2
    y, x = grid.centres()[..., 1], grid.centres()[..., 0]
    known = surround != UNKNOWN
    for half in (x > 1.0, x < -1.0):
        assert (surround[known & half & (np.abs(y) < LANE - 0.1)] == FREE).all()
        assert (surround[known & half & (np.abs(y) > LANE + 0.1)] == OCCUPIED).all()
        assert (known & half).mean() > 0.3
    both = seen[0] & seen[1]
    agree = both & (grids[0] == grids[1])
    np.testing.assert_array_equal(surround[agree], grids[0][agree])


def test_the_fused_scan_sees_the_lane_all_round():
    """/scan of the surround grid: a beam every 0.5 deg all round from the robot's origin,
    out to the grid's half-width (every bearing is in some camera's field); along the lane
    free to range_max ahead and behind, across it the verge at LANE / |sin(bearing)|; the
    front camera alone knows nothing behind."""
    grids, fusion, surround = front_and_rear()
    spec = fusion.scan
    angles = spec.angles
    assert len(angles) == 720 and angles[0] == -math.pi and angles[-1] < math.pi
    assert spec.range_max == pytest.approx(SURROUND.y_max)
    ranges = scan_ranges(SURROUND, surround, spec)

    def at(deg: float, values: np.ndarray = ranges) -> float:
        return float(values[np.argmin(np.abs(angles - math.radians(deg)))])

    assert at(0) == math.inf and at(-180) == math.inf
    for deg in (90, -90, 40, -40, 140, -140):  # a cell and a half-cell sample of slack
        assert at(deg) == pytest.approx(LANE / abs(math.sin(math.radians(deg))), abs=0.1), deg
    assert math.isnan(at(-180, scan_ranges(SURROUND, grids[0], spec)))
    assert at(0, scan_ranges(SURROUND, grids[0], spec)) == math.inf


def test_record_fuse_writes_the_fusion_of_the_recorded_grids(tmp_path):
    """A node with two cameras, both with the demo's camera file: after each camera's
    /NAME/grid comes /grid, the fusion of the newest /front/grid and /rear/grid recorded
    so far (within the age limit of the newest), and /scan, that grid's laser scan."""
    out = tmp_path / "fused.mcap"
    camera = str(DEMO_CAMERA)
    with demo_node(image_topic=False, source=("demo", "demo"), name=("front", "rear")) as node:
        report = record(RecordConfig(endpoint=node, topics=("front/drivable", "rear/drivable"),
                                     out=str(out), count=12, timeout_s=90.0,
                                     cameras=(camera,), fuse=True))
    masks = report.counts["front/drivable"] + report.counts["rear/drivable"]
    assert masks == 12 and report.counts["grid"] == report.counts["scan"] == masks
    ground = load_ground(DEMO_CAMERA)
    spec = GridFusion({"front": ground, "rear": ground}).scan
    latest: dict[str, tuple[int, np.ndarray]] = {}
    fused: dict[int, np.ndarray] = {}  # /grid by stamp
    scans: list[tuple[int, object]] = []
    checked = merged = 0
    with open(out, "rb") as stream:
        for _, channel, _, ros in make_reader(stream, decoder_factories=[
                DecoderFactory()]).iter_decoded_messages():
            stamp = ros.header.stamp.sec * 10**9 + ros.header.stamp.nanosec
            if channel.topic == "/scan":
                scans.append((stamp, ros))
            if not channel.topic.endswith("/grid"):
                continue
            values = np.asarray(ros.data, np.int8).reshape(ros.info.height, ros.info.width)
            if channel.topic == "/grid":
                newest = max(s for s, _ in latest.values())
                want = fuse([v for s, v in latest.values() if newest - s <= MAX_AGE_S * 1e9])
                np.testing.assert_array_equal(values, want)
                assert ros.header.frame_id == "base_link"
                assert stamp in {s for s, _ in latest.values()}  # the grid that triggered it
                checked, fused[stamp] = checked + 1, values
                merged += int(len(latest) == 2 and not all(
                    np.array_equal(values, v) for _, v in latest.values()))
            else:
                latest[channel.topic.split("/")[1]] = (stamp, values)
    assert checked == len(scans) == masks and set(latest) == {"front", "rear"}
    for stamp, scan in scans:  # each the scan of the /grid of its stamp
        assert (scan.angle_min, scan.range_max) == pytest.approx(  # float32 in LaserScan
            (spec.angle_min, spec.range_max), rel=1e-6)
        np.testing.assert_array_equal(np.asarray(scan.ranges, np.float32),
                                      scan_ranges(ground.grid, fused[stamp], spec))
    assert merged >= 1  # the two cameras' scenes differ: some /grid is neither camera's own
