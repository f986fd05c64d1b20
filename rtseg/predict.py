"""Masks for folders of images, videos and recordings, and scores, through the same
pipeline the node runs.

`rtseg predict` writes, for every image STEM.* of a folder, `OUT/STEM.png` (8-bit class
index, the image's size) and `OUT/overlay/STEM.png` (colour overlay). From a video file or
a recording (every frame, or every `every`-th) it writes a training folder instead:
`OUT/images/STEM.png` (the frame, lossless), `OUT/masks/STEM.png`, `OUT/overlay/STEM.png`
and `OUT/data.toml`, the `[data]` section that trains on it (`kind = "folder"`): a large
model's masks of recorded drives as pseudo-labels for a small real-time one. With a camera
file (rtseg.camera_file) each frame's grid on the ground goes to `OUT/grid/STEM.pgm` +
`STEM.yaml` (a map that ROS's map_server loads, rtseg.map_file) and `STEM_above.png` (the
grid seen from above). `rtseg eval`
scores a data set split through this same path, so its figures are what predict + any
independent scorer gives.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from rtseg.backends import load_backend
from rtseg.data import IMAGE_SUFFIXES
from rtseg.errors import RtsegError
from rtseg.ground import GroundGrid
from rtseg.metrics import ConfusionMatrix, drivable_scoring_lut
from rtseg.stream.pipeline import Pipeline


def predict_source(model: str, source: str, out: str, every: int = 1,
                   device: str = "auto", camera: str | None = None) -> str:
    """`rtseg predict`: a folder of images (predict_folder), else a video file or a
    recording (predict_frames), with each grid when `camera` names a camera file; returns
    the line that says what was written."""
    from rtseg.camera_file import load_ground
    from rtseg.stream.sources import parse_source

    ground = load_ground(camera) if camera else None
    grids = f"; grids (map_server maps) to {out}/grid" if ground else ""
    if parse_source(source)[0] == "images" and Path(source).is_dir():
        count = predict_folder(model, source, out, device=device, ground=ground)
        return f"wrote {count} masks to {out} and overlays to {out}/overlay{grids}"
    count = predict_frames(model, source, out, every=every, device=device, ground=ground)
    return (f"wrote {count} frames, masks and overlays to {out}/images, masks, overlay; "
            f"{out}/data.toml is the [data] section that trains on them{grids}")


def predict_frames(model: str, source: str, out: str | Path, every: int = 1,
                   device: str = "auto", progress: bool = True,
                   ground: GroundGrid | None = None) -> int:
    """Write a training folder (module doc) of every `every`-th frame of the video file or
    recording `source` (a `--source` spec), and `ground`'s grids; returns the frames
    written."""
    from tqdm import tqdm

    from rtseg.stream.sources import SourceSpec, open_source, parse_source

    if parse_source(source)[0] not in ("video", "bag", "images"):
        raise RtsegError(f"--source {source}: predict reads folders of images, video files "
                         "and recordings; record a live source first (rtseg record) and "
                         "predict from the recording")
    if every < 1:
        raise RtsegError(f"--every must be 1 or more, got {every}")
    out = Path(out)
    for sub in ("images", "masks", "overlay") + (("grid",) if ground else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(load_backend(model, device))
    palette, written = _palette(pipeline), 0
    with open_source(SourceSpec(spec=source)) as frames, tqdm(
            desc="predict", unit="frame", disable=not progress) as bar:
        while (frame := frames.read(timeout=10.0)) is not None or not frames.exhausted:
            if frame is None or frame.seq % every:
                continue
            stem = f"{frames.name}_{frame.seq:06d}"
            masks = pipeline(frame.image)
            _write(out / "images" / f"{stem}.png", frame.image)
            _write(out / "masks" / f"{stem}.png", masks.classes)
            _write(out / "overlay" / f"{stem}.png",
                   _overlay(frame.image, masks.classes, palette))
            if ground:
                _write_grid(out / "grid" / stem, ground, masks, pipeline.spec.classes)
            written += 1
            bar.update()
    (out / "data.toml").write_text(data_section(out, pipeline.spec))
    return written


def data_section(root: Path, spec) -> str:
    """The `[data]` recipe section of a predicted training folder at `root`."""
    drivable = list(spec.drivable)
    return (f"# masks by {spec.name}: pseudo-labels (rtseg predict)\n[data]\n"
            f'kind = "folder"\nroot = {json.dumps(root.resolve().as_posix())}\n'
            f"classes = {json.dumps(list(spec.classes))}\ndrivable = {json.dumps(drivable)}\n"
            "split = [0.9, 0.1]\n")


def predict_folder(model: str, source: str | Path, out: str | Path,
                   device: str = "auto", progress: bool = True,
                   ground: GroundGrid | None = None) -> int:
    """Write class-index masks and overlays for every image in `source`, and `ground`'s
    grids; returns the count."""
    from tqdm import tqdm

    images = _images(Path(source))
    out = Path(out)
    (out / "overlay").mkdir(parents=True, exist_ok=True)
    if ground:
        (out / "grid").mkdir(exist_ok=True)
    pipeline = Pipeline(load_backend(model, device))
    palette = _palette(pipeline)
    for path in tqdm(images, desc="predict", unit="img", disable=not progress):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise RtsegError(f"{path} could not be decoded as an image")
        masks = pipeline(image)
        _write(out / f"{path.stem}.png", masks.classes)
        _write(out / "overlay" / f"{path.stem}.png", _overlay(image, masks.classes, palette))
        if ground:
            _write_grid(out / "grid" / path.stem, ground, masks, pipeline.spec.classes)
    return len(images)


def _write_grid(stem: Path, ground: GroundGrid, masks, class_names: tuple[str, ...]) -> None:
    """STEM.pgm + STEM.yaml (a map_server map: trinary, or raw for a cost grid) and
    STEM_above.png (the grid from above, 480 pixels tall) of one frame's masks."""
    from rtseg.ground_draw import grid_picture
    from rtseg.map_file import write_map

    values = ground.grid_of_masks(masks, tuple(class_names))
    write_map(stem, ground.grid, values, "raw" if ground.costs else "trinary")
    _write(stem.parent / f"{stem.name}_above.png", grid_picture(ground.grid, values, 480))


def evaluate_model(model: str, data, split: str = "val", device: str = "auto",
                   progress: bool = False, upsample: str = "logits",
                   drivable: Sequence[str] = ()) -> dict:
    """Score a model on `split` of `data` (DataConfig) through the node's pipeline
    (`upsample`: see rtseg.stream.pipeline; the CPU node uses "classes"); `drivable`:
    classes scored as drivable instead of the model's own.

    Returns miou, per-class iou/accuracy by name, pixel/mean accuracy, drivable_iou, images.
    """
    from tqdm import tqdm

    from rtseg.data.datasets import open_data

    pipeline = Pipeline(load_backend(model, device, drivable=drivable), upsample=upsample)
    spec = pipeline.spec
    h, w = spec.input_size
    samples = open_data(replace(data, height=h, width=w), split)
    _check_classes(samples.info.classes, spec.classes)
    ignore = samples.info.ignore_index
    cm, drivable = ConfusionMatrix(len(spec.classes), ignore), ConfusionMatrix(2, ignore)
    lut = drivable_scoring_lut(len(spec.classes), spec.drivable_ids, ignore)
    for i in tqdm(range(len(samples)), desc="eval", unit="img", disable=not progress):
        image, truth = samples.load(i)
        masks = pipeline(np.ascontiguousarray(image[:, :, ::-1]))
        cm.update(masks.classes, truth)
        drivable.update(masks.drivable, lut[truth])
    result = cm.compute().as_dict(spec.classes)
    result.update(drivable_iou=drivable.compute().iou[1], images=len(samples),
                  classes=list(spec.classes), model=spec.name, split=split)
    return result


def _check_classes(data_classes, model_classes) -> None:
    if tuple(data_classes) != tuple(model_classes):
        raise RtsegError(f"the data set's classes {list(data_classes)} are not the model's "
                         f"{list(model_classes)}: score a model on the data it was made for")


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise RtsegError(f"--source {folder} is not a folder of images")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise RtsegError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        raise RtsegError(f"{folder} has several images with one stem; outputs would collide")
    return images


def _palette(pipeline: Pipeline) -> np.ndarray:
    """(C, 3) uint8 BGR."""
    return pipeline.spec.palette_array()[:, ::-1]


def _overlay(image: np.ndarray, classes: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR + (H, W) class map -> blended (H, W, 3) uint8 BGR."""
    return cv2.addWeighted(image, 0.5, palette[classes], 0.5, 0.0)


def _write(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array):
        raise RtsegError(f"could not write {path}: is the folder writable?")
