"""`rtseg ground`: a camera file's facts, its grid drawn over a frame, and with --model the
frame segmented and its drivable area on the ground beside it (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO  # noqa: I001  (tests/ is on sys.path)
from test_ground import H, W

from rtseg.camera_file import load_ground
from rtseg.data.synthetic import render
from rtseg.ground import FREE, UNKNOWN
from rtseg.ground_draw import grid_picture


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


def test_the_check_command_segments_the_frame_with_a_model(tmp_path):
    """--model demo: the frame's overlay by the bundled model under the grid's lines, and
    on its right that model's drivable area on the ground (rtseg.Segmenter's mask through
    the camera file), pixel for pixel."""
    from rtseg import Segmenter

    camera = REPO / "launch" / "cameras" / "demo.toml"
    done, frame = check_with_model(tmp_path, camera)
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


def check_with_model(tmp_path, camera) -> tuple[subprocess.CompletedProcess, np.ndarray]:
    """`rtseg ground CAMERA --image FRAME --out check.png --model demo` on the demo's first
    scene, succeeded; its run and the frame (H, W, 3) BGR."""
    image, _ = render(synthetic_scene_0(), H, W)
    frame = np.ascontiguousarray(image[..., ::-1])
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    done = run_ground(str(camera), "--image", str(tmp_path / "frame.png"), "--out",
                      str(tmp_path / "check.png"), "--model", "demo")
    assert done.returncode == 0, done.stderr
    return done, frame


def synthetic_scene_0():
    """The demo's first scene (launch/cameras/demo.toml is its camera)."""
    from rtseg.data.synthetic import random_params

    return random_params(np.random.default_rng(0))


def test_with_costs_the_check_draws_the_grid_of_costs(tmp_path):
    from rtseg import Segmenter

    camera = tmp_path / "costs.toml"
    camera.write_text((REPO / "launch" / "cameras" / "demo.toml").read_text()
                      + "\n[costs]\nroad = 0\nlane_marking = 0\nsidewalk = 30\n")
    _, frame = check_with_model(tmp_path, camera)
    ground = load_ground(camera)
    with Segmenter("demo") as segmenter:
        costs = ground.cost_grid(segmenter(frame).classes, segmenter.classes)
    assert {0, 30, 100} <= set(np.unique(costs).tolist())
    drawn = cv2.imread(str(tmp_path / "check.png"))
    np.testing.assert_array_equal(drawn[:, W:], grid_picture(ground.grid, costs, H))


def test_several_camera_files_are_checked_together(tmp_path):
    """`rtseg ground A.toml B.toml --out PNG` (cameras for --fuse): each file's facts, and
    together the cells seen by 0, 1 or 2 cameras, which add up as inclusion-exclusion
    says (one + 2 * both = the two cameras' own fractions); the picture shades them grey,
    between and green. Files whose grids differ, or --image with several, are refused."""
    from rtseg.ground_draw import FREE_BGR, UNKNOWN_BGR

    camera = REPO / "launch" / "cameras" / "demo.toml"
    turned = tmp_path / "turned.toml"
    turned.write_text(camera.read_text().replace("yaw_deg = 0.0", "yaw_deg = 20.0"))
    done = run_ground(str(camera), str(turned), "--out", str(tmp_path / "cover.png"))
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    own = [facts["cameras"][str(f)]["visible_fraction"] for f in (camera, turned)]
    none, one, both = facts["together"]["seen_by"]
    assert none + one + both == pytest.approx(1.0, abs=3e-4)
    assert facts["together"]["visible_fraction"] == pytest.approx(1 - none, abs=3e-4)
    assert one + 2 * both == pytest.approx(sum(own), abs=2e-3)  # a few border cells
    assert 0.1 < both < min(own) and one > 0.1 and none > 0.1
    picture = cv2.imread(str(tmp_path / "cover.png"))
    assert picture.shape[0] == 480
    for colour, fraction in ((UNKNOWN_BGR, none), (FREE_BGR, both)):  # lines, robot: 2 %
        assert (picture == colour).all(axis=2).mean() == pytest.approx(fraction, abs=0.02)
    moved = tmp_path / "moved.toml"
    moved.write_text(camera.read_text().replace("x_max = 46.0", "x_max = 40.0"))
    done = run_ground(str(camera), str(moved))
    assert done.returncode == 1 and "one [grid] in every camera file" in done.stderr
    assert "x 6.0..40.0" in done.stderr and "Traceback" not in done.stderr
    done = run_ground(str(camera), str(turned), "--image", "frame.png", "--out", "x.png")
    assert done.returncode == 1 and "give one camera file with them" in done.stderr
