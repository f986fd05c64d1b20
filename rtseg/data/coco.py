"""COCO segmentation annotations -> class-index masks, without needing pycocotools.

Class rule: classes = ("background",) + the names of the categories that at least one
annotation uses, in category-id order, taken over every annotation file of the data set (so
all splits agree). Categories no annotation uses are dropped: this removes the supercategory
Roboflow exports at id 0, and any unused category. Background (0) is wherever no annotation
lies. `[data] classes` overrides the order: categories are then found by name, and its first
entry is the background.

Painting: annotations are painted in file order, later ones over earlier ones; `iscrowd`
regions are painted with the ignore index. Polygons are COCO's `[x1, y1, x2, y2, ...]` in
pixel-edge coordinates: a pixel belongs to a polygon when its centre lies inside it (even-odd
rule), as pycocotools does (a square with corners 0 and 9 covers 9 x 9 pixels; cv2.fillPoly
would paint 10 x 10). RLE is decoded here, in both forms: `counts` as a list of runs, or as
COCO's compressed string. pycocotools is used instead when it is installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtseg.errors import RtsegError


@dataclass(frozen=True)
class CocoImage:
    """One image entry: its file name (as written in the JSON), size, and what to paint.

    shapes: ((value, segmentation), ...) in file order; value is the class index, or the
    ignore index for crowd regions; segmentation is COCO's polygon list or RLE dict.
    """

    file_name: str
    height: int
    width: int
    shapes: tuple


def read_json(path: Path) -> dict:
    """A COCO annotation file, checked for the `images`, `annotations`, `categories` lists."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RtsegError(f"cannot read COCO annotations {path}: {exc}; re-export them") from exc
    missing = [k for k in ("images", "annotations", "categories")
               if not isinstance(doc, dict) or not isinstance(doc.get(k), list)]
    if missing:
        raise RtsegError(f"COCO annotations {path} lack the list(s) {missing}: "
                         "export the data set in COCO segmentation format")
    return doc


def class_values(docs: Sequence[tuple[Path, dict]],
                 override: Sequence[str] | None) -> tuple[tuple[str, ...], dict[int, int]]:
    """(class names, category id -> class index) by the class rule in the module docstring."""
    names: dict[int, str] = {}
    for path, doc in docs:
        for cat in doc["categories"]:
            cid, name = int(cat["id"]), str(cat["name"])
            if names.setdefault(cid, name) != name:
                raise RtsegError(f"COCO category id {cid} is {names[cid]!r} in one file and "
                                 f"{name!r} in {path}: export all splits together")
    used = set()
    for path, doc in docs:
        for ann in doc["annotations"]:
            if int(ann["category_id"]) not in names:
                raise RtsegError(f"{path}: annotation {ann.get('id')} has category "
                                 f"{ann['category_id']}, which is not in `categories`")
            if ann.get("segmentation"):
                used.add(int(ann["category_id"]))
    if not used:
        raise RtsegError(f"no annotation in {[str(p) for p, _ in docs]} has a segmentation: "
                         "export polygons or masks (an object-detection export has boxes only)")
    if override is None:
        ids = sorted(used)
        return ("background", *(names[c] for c in ids)), {c: i + 1 for i, c in enumerate(ids)}
    absent = sorted({names[c] for c in used} - set(override))
    if absent:
        raise RtsegError(f"COCO categories {absent} are not in [data] classes = {list(override)}"
                         ": add them, or leave `classes` out to use the categories as found")
    return tuple(override), {c: list(override).index(names[c]) for c in used}


def coco_images(path: Path, doc: dict, values: dict[int, int], ignore: int) -> list[CocoImage]:
    """Every image of one annotation file with its shapes (images without any included)."""
    shapes: dict[int, list] = {}
    for ann in doc["annotations"]:
        seg = ann.get("segmentation")
        if seg:
            value = ignore if ann.get("iscrowd") else values[int(ann["category_id"])]
            shapes.setdefault(ann["image_id"], []).append((value, seg))
    images = []
    for entry in doc["images"]:
        height, width = int(entry["height"]), int(entry["width"])
        own = tuple(shapes.get(entry["id"], ()))
        for _, seg in own:
            _check_rle_size(seg, height, width, path, entry["file_name"])
        images.append(CocoImage(str(entry["file_name"]), height, width, own))
    return images


def _check_rle_size(seg, height: int, width: int, path: Path, name: str) -> None:
    for rle in [seg] if isinstance(seg, dict) else [s for s in seg if isinstance(s, dict)]:
        if [int(v) for v in rle.get("size", ())] != [height, width]:
            raise RtsegError(f"{path}: an RLE mask of {name} has size {rle.get('size')} but the "
                             f"image entry says [{height}, {width}]; re-export the annotations")


def rasterise(height: int, width: int, shapes: Sequence) -> np.ndarray:
    """Paint `shapes` ((value, segmentation), ...) in order on background 0 -> (H, W) uint8."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for value, seg in shapes:
        mask[segmentation_mask(seg, height, width)] = value
    return mask


def segmentation_mask(seg, height: int, width: int) -> np.ndarray:
    """One annotation's segmentation (polygons, RLE dict or list of RLE dicts) -> (H, W) bool."""
    api = _pycocotools_mask()
    if api is not None:  # as detectron2 calls it
        if isinstance(seg, list):
            rle = api.merge(api.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):
            rle = api.frPyObjects(seg, height, width)
        else:
            rle = seg
        return api.decode(rle).astype(bool)
    parts = [seg] if isinstance(seg, dict) else seg
    out = np.zeros((height, width), dtype=bool)
    for part in parts:
        if isinstance(part, dict):
            counts = part["counts"]
            if isinstance(counts, str | bytes):
                counts = counts_from_string(counts)
            out |= rle_decode(counts, height, width)
        else:
            out |= polygon_mask(np.asarray(part, dtype=np.float64), height, width)
    return out


def _pycocotools_mask():
    try:
        from pycocotools import mask
    except ImportError:
        return None
    return mask


def polygon_mask(coords: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flat (2K,) polygon x, y in pixel-edge coordinates -> (H, W) bool of pixels whose
    centre is inside (even-odd rule; left/top edges inclusive, right/bottom exclusive)."""
    out = np.zeros((height, width), dtype=bool)
    xy = coords[: len(coords) // 2 * 2].reshape(-1, 2)
    if len(xy) < 3:
        return out
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    # Edge e crosses the centre line of row r (y = r + 0.5) when lo <= r + 0.5 < hi.
    first = np.clip(np.ceil(np.minimum(y0, y1) - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(np.maximum(y0, y1) - 0.5), 0, height).astype(np.int64)
    spans = np.maximum(stop - first, 0)
    if spans.sum() == 0:
        return out
    edge = np.repeat(np.arange(len(xy)), spans)
    rows = first[edge] + np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
    t = (rows + 0.5 - y0[edge]) / (y1[edge] - y0[edge])
    cross = x0[edge] + t * (x1[edge] - x0[edge])
    # A crossing toggles every pixel whose centre c + 0.5 lies at or right of it.
    cols = np.clip(np.ceil(cross - 0.5), 0, width).astype(np.int64)
    top = rows.min()
    band = stop.max() - top
    toggles = np.bincount((rows - top) * (width + 1) + cols, minlength=band * (width + 1))
    inside = np.cumsum(toggles.reshape(band, width + 1), axis=1)[:, :width] % 2 == 1
    out[top:top + band] = inside
    return out


def rle_decode(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """Uncompressed COCO RLE (runs of 0s and 1s, starting with 0s, column-major) ->
    (H, W) bool."""
    runs = np.asarray(counts, dtype=np.int64)
    if runs.sum() != height * width or (runs < 0).any():
        raise RtsegError(f"RLE runs sum to {int(runs.sum())} but the mask is {height}x{width} "
                         f"= {height * width} pixels; the annotation is corrupt, re-export it")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(width, height).T


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO RLE dict {"size": [H, W], "counts": compressed string}."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(counts)}


def counts_from_string(text: str | bytes) -> list[int]:
    """COCO's compressed RLE string -> run lengths (pycocotools' rleFrString).

    Each run is stored in 5-bit groups, low bits first, one character (48 + group) per group;
    bit 0x20 means another group follows, bit 0x10 of the last group is the sign. From the
    fourth run on, the value stored is the difference to the run two places earlier.
    """
    data = text.encode() if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    pos = 0
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(data):
                raise RtsegError("compressed RLE string ends inside a number; re-export it")
            group = data[pos] - 48
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos, shift = pos + 1, shift + 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def counts_to_string(counts: Sequence[int]) -> str:
    """Run lengths -> COCO's compressed RLE string (pycocotools' rleToString)."""
    chars = []
    for i, run in enumerate(counts):
        value = int(run) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            chars.append(chr(48 + (group | 0x20 if more else group)))
    return "".join(chars)
