"""Tests for the synthetic road scene generator (rtseg.data.synthetic)."""

from dataclasses import replace

import numpy as np
import pytest

from rtseg.data import synthetic as syn

SIZES = [(64, 96), (256, 512), (360, 640), (720, 1280)]
SMALL = (96, 160)
SCENES = 8


def _scenes(n: int = SCENES, size: tuple[int, int] = SMALL):
    return [syn.render_scene(np.random.default_rng(seed), *size) for seed in range(n)]


def _clean(params: syn.SceneParams) -> syn.SceneParams:
    """No haze, lighting, blur or noise: image colours are the painted ones."""
    return replace(params, brightness=1.0, contrast=1.0, colour_cast=(1.0, 1.0, 1.0),
                   visibility=1e12, noise_sigma=0.0, blur_sigma=0.0)


def test_constants():
    assert syn.CLASSES == ("road", "lane_marking", "sidewalk", "building", "vegetation", "sky",
                           "car")
    assert syn.DRIVABLE == ("road", "lane_marking")
    assert syn.PALETTE.shape == (len(syn.CLASSES), 3) and syn.PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in syn.PALETTE}) == len(syn.CLASSES)


@pytest.mark.parametrize("size", SIZES)
def test_shapes_and_dtypes(size):
    image, mask = syn.render_scene(np.random.default_rng(3), *size)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    assert mask.shape == size and mask.dtype == np.uint8
    assert mask.max() < len(syn.CLASSES)
    assert image.std() > 10  # not a blank frame


def test_deterministic_for_a_seed_and_different_across_seeds():
    a_img, a_mask = syn.render_scene(np.random.default_rng(7), *SMALL)
    b_img, b_mask = syn.render_scene(np.random.default_rng(7), *SMALL)
    c_img, c_mask = syn.render_scene(np.random.default_rng(8), *SMALL)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_mask, c_mask)
    assert np.abs(a_img.astype(int) - c_img).mean() > 10
    params = syn.random_params(np.random.default_rng(7))
    assert params == syn.random_params(np.random.default_rng(7))
    assert np.array_equal(syn.render(params, *SMALL)[0], a_img)


def test_every_class_appears_over_a_handful_of_scenes():
    seen = set()
    for _, mask in _scenes():
        seen |= set(np.unique(mask).tolist())
    assert seen == set(range(len(syn.CLASSES)))


def test_road_fraction_and_position():
    fractions = []
    for _, mask in _scenes():
        drivable = syn.drivable_mask(mask)
        fractions.append(drivable.mean())
        assert 0.03 < drivable.mean() < 0.7
        lower = drivable[mask.shape[0] // 2:].sum()
        assert lower > 0.85 * drivable.sum()  # the road lies mostly in the lower half
        assert (mask[0] != syn.ROAD).all()  # never on the top row
    assert 0.1 < np.mean(fractions) < 0.6


def test_sky_above_road():
    for _, mask in _scenes(4):
        sky_rows = np.flatnonzero((mask == syn.SKY).any(1))
        road_rows = np.flatnonzero((mask == syn.ROAD).any(1))
        assert sky_rows.max() < road_rows.min()  # the horizon separates them


def test_drivable_mask_values():
    mask = np.arange(len(syn.CLASSES), dtype=np.uint8).reshape(1, -1).repeat(3, 0)
    drivable = syn.drivable_mask(mask)
    assert drivable.dtype == np.uint8 and drivable.shape == mask.shape
    expected = [1 if name in syn.DRIVABLE else 0 for name in syn.CLASSES]
    assert drivable[0].tolist() == expected
    _, scene = syn.render_scene(np.random.default_rng(0), *SMALL)
    assert set(np.unique(syn.drivable_mask(scene)).tolist()) == {0, 1}
    assert np.array_equal(syn.drivable_mask(scene) == 1,
                          (scene == syn.ROAD) | (scene == syn.MARKING))


def test_car_labels_match_car_pixels_exactly():
    colour = (255, 0, 255)  # no other surface is painted magenta
    car = syn.Car(lateral=0.0, distance=12.0, width=1.8, height=1.5, length=4.5,
                  colour=colour, speed=10.0)
    params = _clean(replace(syn.SceneParams(), cars=(car,), shadow_length=0.0))
    image, mask = syn.render(params, 180, 320)
    near_face = np.all(np.abs(image.astype(int) - colour) <= 1, axis=-1)
    assert near_face.sum() > 100
    assert (mask[near_face] == syn.CAR).all()
    without, plain = syn.render(replace(params, cars=()), 180, 320)
    assert not (plain == syn.CAR).any()
    changed = np.any(image != without, axis=-1)
    assert (changed[mask == syn.CAR]).all()  # every car pixel is painted by the car
    assert np.array_equal(mask != plain, mask == syn.CAR)  # nothing else relabelled


def test_ground_colours_follow_labels():
    params = _clean(replace(syn.random_params(np.random.default_rng(11)), cars=(),
                            shadow_length=0.0))
    image, mask = syn.render(params, 180, 320)
    road = image[mask == syn.ROAD].astype(float)
    assert np.abs(road.mean(0) - params.road_colour).max() < 25
    marking = image[mask == syn.MARKING].astype(float).mean()
    assert marking > road.mean() + 60
    sidewalk = image[mask == syn.SIDEWALK].astype(float).mean(0)
    assert np.abs(sidewalk - params.sidewalk_colour).max() < 40


def test_curvature_and_yaw_move_the_road():
    base = _clean(syn.SceneParams())
    centre = []
    for params in (base, replace(base, curvature=0.006), replace(base, vp_x=0.3)):
        mask = syn.render(params, 180, 320)[1]
        row = mask[int(180 * (params.horizon + 0.08))]
        centre.append(np.flatnonzero(syn.drivable_mask(row[None])[0]).mean())
    assert centre[1] > centre[0] + 10 and centre[2] < centre[0] - 10


def test_scene_stream_frames_look_like_video():
    stream = syn.SceneStream(seed=4, height=SMALL[0], width=SMALL[1])
    frames = [stream.next() for _ in range(6)]
    for image, mask in frames:
        assert image.shape == (*SMALL, 3) and mask.shape == SMALL and mask.max() < 7
    step = np.mean([np.abs(a[0].astype(int) - b[0]).mean() for a, b in zip(frames, frames[1:])])
    scenes = _scenes(4)
    apart = np.mean([np.abs(a[0].astype(int) - b[0]).mean() for a, b in zip(scenes, scenes[1:])])
    assert step < 0.3 * apart
    relabelled = np.mean([(a[1] != b[1]).mean() for a, b in zip(frames, frames[1:])])
    assert relabelled < 0.03  # the labels move a little from frame to frame
    assert not np.array_equal(frames[0][0], frames[-1][0])  # it does move
    again = syn.SceneStream(seed=4, height=SMALL[0], width=SMALL[1])
    assert np.array_equal(again.next()[1], frames[0][1])
