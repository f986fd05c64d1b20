"""Loading one sample: image (H, W, 3) uint8 RGB and mask (H, W) uint8 class index.

Images are read with OpenCV (BGR -> RGB), masks with Pillow, so palette PNGs (VOC) give
their indices, not their colours. The `load_*` functions are module-level so that
`functools.partial` bindings of them pickle into DataLoader workers and spawned DDP
processes; `rtseg.data.readers` binds them per data set layout.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from rtseg.data import coco
from rtseg.errors import RtsegError


def read_image(path: str) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB (read with OpenCV)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RtsegError(f"cannot read image {path}: it is missing, truncated or not an image;"
                         " replace it or remove it from the data set")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: str) -> np.ndarray:
    """A label image -> (H, W) uint8 values as stored (palette PNG: its indices; grey: its
    values; RGB with three equal channels: that grey)."""
    img = open_pil(path)
    if img.mode in ("P", "L", "1"):
        return np.array(img, dtype=np.uint8)
    if img.mode.startswith("I"):
        values = np.array(img)
        if values.max(initial=0) > 255:
            raise RtsegError(f"mask {path} holds values above 255; store class indices 0..254")
        return values.astype(np.uint8)
    rgb = np.array(img.convert("RGB"))
    if (rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 0] != rgb[..., 2]).any():
        raise RtsegError(f"mask {path} is a colour image: set [data] palette = [[r, g, b], ...]"
                         " (one colour per class) to read colour masks")
    return rgb[..., 0].copy()


def read_colour_label(path: str) -> np.ndarray:
    """A colour mask -> (H, W, 3) uint8 RGB."""
    return np.array(open_pil(path).convert("RGB"))


def open_pil(path: str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except (OSError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise RtsegError(f"cannot read mask {path} ({exc}); replace it or remove it from the "
                         "data set") from exc
    return img


def load_mapped(lut: np.ndarray, pair: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(image path, label path) -> image (H, W, 3) uint8 RGB, mask (H, W) uint8 = lut[label]."""
    image = read_image(pair[0])
    mask = lut[read_label(pair[1])]
    check_size(image, mask, pair[0], f"mask {pair[1]}")
    return image, mask


def load_folder(lut: np.ndarray, binary_lut: np.ndarray | None,
                pair: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """As `load_mapped`; a mask of only 0 and 255 goes through `binary_lut` when given."""
    image = read_image(pair[0])
    label = read_label(pair[1])
    if binary_lut is not None and np.isin(label, (0, 255)).all():
        lut = binary_lut
    mask = lut[label]
    check_size(image, mask, pair[0], f"mask {pair[1]}")
    return image, mask


def load_colour(keys: np.ndarray, values: np.ndarray, ignore: int,
                pair: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Colour mask -> class index: the class whose packed RGB is in sorted `keys` (K,), at
    the same position in `values` (K,); any other colour -> `ignore`."""
    image = read_image(pair[0])
    rgb = read_colour_label(pair[1]).astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    mask = np.where(keys[pos] == packed, values[pos], ignore).astype(np.uint8)
    check_size(image, mask, pair[0], f"mask {pair[1]}")
    return image, mask


def load_coco(sample: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(image path, H, W, shapes) -> image (H, W, 3) uint8 RGB, rasterised mask (H, W) uint8."""
    path, height, width, shapes = sample
    image = read_image(path)
    mask = coco.rasterise(height, width, shapes)
    check_size(image, mask, path, "its size in the COCO JSON image entry")
    return image, mask


def check_size(image: np.ndarray, mask: np.ndarray, image_path: str, what: str) -> None:
    if image.shape[:2] != mask.shape:
        raise RtsegError(
            f"{what} is {mask.shape[0]}x{mask.shape[1]} (HxW) but image {image_path} is "
            f"{image.shape[0]}x{image.shape[1]}: masks must match their images pixel for "
            "pixel; fix or remove this pair")


def index_lut(mapping: dict[int, int], ignore: int) -> np.ndarray:
    """(256,) uint8 lookup table: stored value -> class index, unmapped values -> ignore."""
    lut = np.full(256, ignore, dtype=np.uint8)
    for stored, index in mapping.items():
        lut[stored] = index
    return lut
