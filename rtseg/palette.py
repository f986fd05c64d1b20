"""Colours for class maps, chosen by class name, and the overlays consumers draw with them.

No palette travels on the wire (a `classes` mask carries only its class names), so every
consumer (the viewer, the recorder's video, the HTTP endpoint's `/model`) colours a class
by its *name*: the Cityscapes colours for the names Cityscapes and CamVid share (road,
sidewalk / pavement, building, vegetation / tree, sky, car, person / pedestrian, ...),
white for lane markings, and for any other name a fixed colour hashed from the name, the
same in every process. No torch here; OpenCV only for drawing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from rtseg.data.classmaps import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

NO_PREDICTION = 255  # a `classes` pixel without prediction (PROTOCOL.md): left unpainted
DRIVABLE_TINT_BGR = (60, 230, 60)  # the drivable area: tint and outline, green
_ALIASES = {  # other data sets' names for Cityscapes classes
    "pavement": "sidewalk", "tree": "vegetation", "pedestrian": "person",
    "bicyclist": "rider", "signsymbol": "traffic sign", "sign": "traffic sign",
    "traffic_light": "traffic light", "traffic_sign": "traffic sign", "cyclist": "rider",
    "motorbike": "motorcycle", "vehicle": "car",
}
_EXTRA = {"lane_marking": (255, 255, 255), "lane marking": (255, 255, 255),
          "not_drivable": (0, 0, 0), "background": (0, 0, 0), "drivable": (60, 230, 60),
          "void": (0, 0, 0), "unlabelled": (0, 0, 0)}
_KNOWN = {**dict(zip(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)), **_EXTRA}


def class_colour(name: str) -> tuple[int, int, int]:
    """The RGB colour of class `name` (case-insensitive): a known one, else hashed."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _KNOWN:
        return tuple(int(v) for v in _KNOWN[key])
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return tuple(64 + digest[i] % 192 for i in range(3))  # never too dark to see


@lru_cache(maxsize=64)
def palette_for(classes: tuple[str, ...]) -> np.ndarray:
    """``(256, 3) uint8`` BGR lookup table for class indices: row i is class i's colour,
    rows from ``len(classes)`` on (255 = no prediction) black. Read-only, cached."""
    table = np.zeros((256, 3), dtype=np.uint8)
    for index, name in enumerate(classes[:255]):
        table[index] = class_colour(name)[::-1]
    table.setflags(write=False)
    return table


def legend(classes: Sequence[str]) -> list[dict]:
    """``[{"index", "name", "rgb": "#rrggbb"}]`` in class order, for pages and JSON."""
    return [{"index": i, "name": name, "rgb": "#{:02x}{:02x}{:02x}".format(*class_colour(name))}
            for i, name in enumerate(classes)]


def colorize(classes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``(H, W) uint8`` class map -> ``(H, W, 3) uint8`` BGR in the palette of `names`
    (one OpenCV table lookup: ~10x faster than NumPy's fancy indexing)."""
    import cv2

    three = cv2.merge([np.ascontiguousarray(classes)] * 3)
    return cv2.LUT(three, palette_for(tuple(names)).reshape(256, 1, 3))


def overlay(image: np.ndarray | None, classes: np.ndarray | None, names: Sequence[str],
            drivable: np.ndarray | None = None, alpha: float = 0.5) -> np.ndarray:
    """Draw a frame's masks: the classes blended over the image, the drivable area tinted
    and outlined in green.

    Args:
        image: ``(H, W, 3) uint8`` BGR, or None for the coloured mask alone.
        classes: ``(h, w) uint8`` class map (any size: resized, nearest, to the image), or
            None (drivable only).
        drivable: ``(h, w) uint8`` 0/1, or None.
    Returns:
        ``(H, W, 3) uint8`` BGR: the image's size, else the masks'.
    """
    import cv2

    masks = [m for m in (classes, drivable) if m is not None]
    if image is None and not masks:
        raise ValueError("overlay needs an image or a mask")
    height, width = image.shape[:2] if image is not None else masks[0].shape
    fit = [None if m is None else _fit(m, height, width) for m in (classes, drivable)]
    classes, drivable = fit
    if image is None:
        out = colorize(classes, names) if classes is not None else np.zeros(
            (height, width, 3), np.uint8)
    else:
        out = image.copy()
        if classes is not None:
            painted = classes != NO_PREDICTION
            blend = cv2.addWeighted(image, 1.0 - alpha, colorize(classes, names), alpha, 0.0)
            cv2.copyTo(blend, painted.view(np.uint8), out)  # in place, where painted
    if drivable is not None:
        _tint_drivable(out, drivable)
    return out


def _fit(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)


@lru_cache(maxsize=1)
def _tint_table() -> np.ndarray:
    """``(256, 1, 3) uint8``: each BGR level v -> int(0.7 v + 0.3 tint), the tint's 30 %."""
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    tint = np.asarray(DRIVABLE_TINT_BGR, np.float32)
    table = (0.7 * levels + 0.3 * tint).astype(np.uint8).reshape(256, 1, 3)
    table.setflags(write=False)
    return table


def _tint_drivable(out: np.ndarray, drivable: np.ndarray) -> None:
    """In place: drivable pixels of ``(H, W, 3)`` BGR `out` tinted, their border drawn."""
    import cv2

    inside = drivable.astype(bool)
    cv2.copyTo(cv2.LUT(out, _tint_table()), inside.view(np.uint8), out)  # in place
    contours, _ = cv2.findContours(inside.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, DRIVABLE_TINT_BGR, max(1, out.shape[1] // 320))
