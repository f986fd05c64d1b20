"""Colours by class name and the overlay every consumer draws (viewer, recorder, Foxglove
bridge, Segmenter.overlay): each pixel checked against the arithmetic it promises."""

from __future__ import annotations

import numpy as np

from rtseg.palette import (
    DRIVABLE_TINT_BGR,
    NO_PREDICTION,
    class_colour,
    colorize,
    overlay,
)

NAMES = ("road", "Pavement", "sky", "my_robot_class")


def test_colours_go_by_name_and_unknown_names_hash_the_same_each_time():
    assert class_colour("road") == (128, 64, 128)  # Cityscapes
    assert class_colour("Pavement") == class_colour("sidewalk")  # CamVid's name for it
    assert class_colour("my_robot_class") == class_colour("MY_ROBOT_CLASS ")
    assert min(class_colour("my_robot_class")) >= 64  # never too dark to see


def test_colorize_maps_indices_and_leaves_no_prediction_black():
    classes = np.array([[0, 1, 2], [3, NO_PREDICTION, 0]], np.uint8)
    bgr = colorize(classes, NAMES)
    assert bgr.shape == (2, 3, 3) and bgr.dtype == np.uint8
    for (y, x), index in np.ndenumerate(classes):
        want = (0, 0, 0) if index == NO_PREDICTION else class_colour(NAMES[index])[::-1]
        assert tuple(bgr[y, x]) == want


def test_overlay_blends_classes_tints_drivable_and_keeps_unpredicted_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    classes = np.zeros((20, 30), np.uint8)  # half size: resized nearest to the image
    classes[:, 15:] = 2
    classes[:5, :5] = NO_PREDICTION
    drivable = np.zeros((20, 30), np.uint8)
    drivable[8:16, 3:12] = 1
    out = overlay(image, classes, NAMES, drivable)
    assert out.shape == image.shape and not np.shares_memory(out, image)
    assert np.array_equal(out[:10, :10], image[:10, :10])  # no prediction, not drivable
    sky = np.asarray(class_colour("sky")[::-1], float)
    blended = 0.5 * image[30:40, 40:60].astype(float) + 0.5 * sky
    assert np.abs(out[30:40, 40:60] - blended).max() <= 1  # rounding
    road = 0.5 * image[20:28, 10:20].astype(float) + 0.5 * np.asarray((128, 64, 128), float)
    tinted = 0.7 * np.round(road) + 0.3 * np.asarray(DRIVABLE_TINT_BGR, float)
    assert np.abs(out[20:28, 10:20] - tinted).max() <= 1.5  # inside the drivable area
    assert tuple(out[16, 12]) == DRIVABLE_TINT_BGR  # its outline
    assert np.array_equal(overlay(image, classes, NAMES, drivable), out)  # deterministic


def test_without_an_image_the_coloured_mask_at_the_masks_size():
    classes = np.array([[0, 2], [NO_PREDICTION, 1]], np.uint8)
    out = overlay(None, classes, NAMES)
    assert np.array_equal(out, colorize(classes, NAMES))
