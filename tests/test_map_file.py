"""Grids as map_server maps (rtseg.map_file), read back by the rules Nav2's map_server
loads them with (nav2_map_server map_io: occ = (255 - pixel) / 255 with negate 0; trinary:
occ > occupied_thresh occupied, occ < free_thresh free, else unknown; raw: the pixel is
the value, past 100 unknown; the image's top row is the grid's last), and `rtseg predict
--camera` writing one per image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from rtseg.camera_file import load_ground
from rtseg.data import synthetic
from rtseg.ground import FREE, OCCUPIED, UNKNOWN, GridSpec
from rtseg.map_file import map_image, write_map
from rtseg.predict import predict_folder
from rtseg.segmenter import Segmenter

REPO = Path(__file__).resolve().parents[1]
DEMO_CAMERA = REPO / "launch" / "cameras" / "demo.toml"


def nav2_load(yaml_path: Path) -> tuple[np.ndarray, dict]:
    """A map's YAML -> its grid (rows, cols) int8, row 0 = the image's bottom row, and the
    YAML's keys."""
    meta = yaml.safe_load(yaml_path.read_text())
    image = cv2.imread(str(yaml_path.parent / meta["image"]), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.ndim == 2 and image.dtype == np.uint8
    shade = image / 255.0
    occ = shade if meta["negate"] else 1.0 - shade
    if meta["mode"] == "trinary":
        values = np.where(occ > meta["occupied_thresh"], OCCUPIED,
                          np.where(occ < meta["free_thresh"], FREE, UNKNOWN))
    else:
        assert meta["mode"] == "raw"
        pixel = np.round(shade * 255)
        values = np.where(pixel <= 100, pixel, UNKNOWN)
    return values[::-1].astype(np.int8), meta


def test_a_trinary_map_loads_back_as_the_grid(tmp_path):
    grid = GridSpec(x_min=-2.0, x_max=6.0, y_min=-3.0, y_max=5.0, resolution=0.25,
                    frame_id="base_footprint")
    rng = np.random.default_rng(3)
    values = rng.choice(np.array([FREE, OCCUPIED, UNKNOWN], np.int8), size=grid.shape)
    values[0, :] = OCCUPIED  # the first row (y_min) is the image's bottom row
    image_path, yaml_path = write_map(tmp_path / "front", grid, values)
    assert image_path.read_bytes().startswith(b"P5")  # binary PGM, what map_saver writes
    loaded, meta = nav2_load(yaml_path)
    np.testing.assert_array_equal(loaded, values)
    assert meta["image"] == "front.pgm" and meta["resolution"] == 0.25
    assert meta["origin"] == [-2.0, -3.0, 0.0]
    assert (cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)[-1] == 0).all()


def test_a_cost_map_is_raw_and_lossless(tmp_path):
    grid = GridSpec(x_min=0.0, x_max=3.0, y_min=-1.0, y_max=1.0, resolution=0.1)
    rng = np.random.default_rng(4)
    values = rng.integers(-1, 101, size=grid.shape).astype(np.int8)
    _, yaml_path = write_map(tmp_path / "costs", grid, values, mode="raw")
    loaded, meta = nav2_load(yaml_path)
    assert meta["mode"] == "raw"
    np.testing.assert_array_equal(loaded, values)
    with pytest.raises(ValueError, match="not the grid's"):
        write_map(tmp_path / "x", grid, values[:-1])
    with pytest.raises(ValueError, match="trinary or raw"):
        map_image(values, "scale")


def demo_drivable_ids() -> list[int]:
    """The demo model's drivable class indices."""
    with Segmenter("demo", device="cpu", warmup=False) as seg:
        return [seg.classes.index(name) for name in seg.drivable_classes]


def _scenes(folder: Path, count: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(11)
    for i in range(count):
        image, _ = synthetic.render_scene(rng, 360, 640)
        cv2.imwrite(str(folder / f"s{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_predict_with_a_camera_writes_each_frame_s_map(tmp_path):
    """`rtseg predict demo --camera demo.toml`: OUT/grid/STEM.{pgm,yaml,_above.png}; each
    map loads back as the camera's grid of the mask predict wrote, the road ahead free."""
    _scenes(tmp_path / "in", 2)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", "demo", "--source",
                           str(tmp_path / "in"), "--out", str(out), "--device", "cpu",
                           "--camera", str(DEMO_CAMERA)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"grids (map_server maps) to {out}/grid" in done.stderr
    ground = load_ground(DEMO_CAMERA)
    drivable_ids = demo_drivable_ids()
    for stem in ("s0", "s1"):
        classes = cv2.imread(str(out / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        expected = ground.occupancy(np.isin(classes, drivable_ids).astype(np.uint8))
        loaded, meta = nav2_load(out / "grid" / f"{stem}.yaml")
        np.testing.assert_array_equal(loaded, expected)
        assert meta["mode"] == "trinary" and meta["resolution"] == ground.grid.resolution
        near = loaded[:, : loaded.shape[1] // 4]  # the nearest quarter, across the grid
        seen = near[near != UNKNOWN]  # the road ahead free, the verges beside it not
        assert (seen == FREE).mean() > 0.1 and (seen == OCCUPIED).mean() > 0.1
        above = cv2.imread(str(out / "grid" / f"{stem}_above.png"))
        assert above.shape[0] == 480


def test_predict_with_costs_writes_raw_cost_maps(tmp_path):
    """A camera file with [costs]: the maps are the cost grid of the classes mask."""
    _scenes(tmp_path / "in", 1)
    costs = tmp_path / "costs.toml"
    costs.write_text(DEMO_CAMERA.read_text().replace(
        "# [costs]", "[costs]").replace("# road = 80", "road = 80").replace(
        "# sidewalk = 0", "sidewalk = 0").replace("# default = 100", "default = 100"))
    ground = load_ground(costs)
    assert ground.costs == {"road": 80, "sidewalk": 0}
    predict_folder("demo", tmp_path / "in", tmp_path / "out", device="cpu", progress=False,
                   ground=ground)
    classes = cv2.imread(str(tmp_path / "out" / "s0.png"), cv2.IMREAD_UNCHANGED)
    loaded, meta = nav2_load(tmp_path / "out" / "grid" / "s0.yaml")
    assert meta["mode"] == "raw"
    np.testing.assert_array_equal(loaded, ground.cost_grid(classes, synthetic.CLASSES))
    assert {0, 80, 100} <= set(np.unique(loaded).tolist())


def test_predict_names_a_bad_camera_file_before_loading_the_model(tmp_path):
    _scenes(tmp_path / "in", 1)
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", "demo", "--source",
                           str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                           "--camera", str(tmp_path / "none.toml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "cannot read camera file" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_predict_from_a_video_writes_a_map_per_frame_it_keeps(tmp_path):
    """A video (every 2nd frame): OUT/grid/ holds the maps of exactly the frames written,
    each the camera's grid of that frame's mask."""
    from rtseg.predict import predict_frames

    video, rng = tmp_path / "drive.avi", np.random.default_rng(5)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 360))
    for _ in range(4):
        writer.write(cv2.cvtColor(synthetic.render_scene(rng, 360, 640)[0], cv2.COLOR_RGB2BGR))
    writer.release()
    ground = load_ground(DEMO_CAMERA)
    out = tmp_path / "out"
    assert predict_frames("demo", str(video), out, every=2, device="cpu", progress=False,
                          ground=ground) == 2
    stems = ["drive_000000", "drive_000002"]
    assert sorted(p.stem for p in (out / "grid").glob("*.yaml")) == stems
    assert sorted(p.name for p in (out / "grid").glob("*.png")) == [
        f"{stem}_above.png" for stem in stems]
    drivable_ids = demo_drivable_ids()
    for stem in stems:
        classes = cv2.imread(str(out / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        loaded, _ = nav2_load(out / "grid" / f"{stem}.yaml")
        np.testing.assert_array_equal(
            loaded, ground.occupancy(np.isin(classes, drivable_ids).astype(np.uint8)))
