"""Synthetic road scenes with exact per-pixel labels (numpy + OpenCV only).

A frozen :class:`SceneParams` is drawn by :func:`render` at any size into an image (H, W, 3) uint8
RGB and a class map (H, W) uint8 indexing :data:`CLASSES`. Ground rows below the horizon ``hy``
have nearness ``d = (y - hy) / (H - hy)``, depth ``depth_bottom / d`` metres and ``G d`` pixels
per metre; the road centre bends by ``curvature z^2 / 2``. Ground and facades are classified per
pixel from these coordinates and coloured from the class map; cars are polygons filled into image
and class map by the same ``cv2.fillPoly`` calls, so every label is exact by construction.
:class:`SceneStream` drifts the parameters frame to frame like a drive.
"""

from dataclasses import dataclass, replace

import numpy as np

from rtseg.data.scene_paint import (
    BLOTCH,
    BUILDING,
    CAR,
    CLASSES,
    GRAIN,
    MARKING,
    ROAD,
    SIDEWALK,
    SKY,
    VEGETATION,
    Camera,
    finish,
    jitter,
    layout,
    paint_car,
    paint_facades,
    paint_far,
    paint_ground,
    paint_sky,
    textures,
)
from rtseg.metrics import drivable_lut

__all__ = [  # the public API; the class names and indices come from scene_paint
    "CLASSES", "DRIVABLE", "PALETTE", "ROAD", "MARKING", "SIDEWALK", "BUILDING", "VEGETATION",
    "SKY", "CAR", "Car", "SceneParams", "random_params", "render", "render_scene", "SceneStream",
    "drivable_mask"]

DRIVABLE: tuple[str, ...] = ("road", "lane_marking")
PALETTE: np.ndarray = np.array(
    [[128, 64, 128], [255, 255, 255], [244, 35, 232], [70, 70, 70],
     [107, 142, 35], [70, 130, 180], [0, 0, 142]], dtype=np.uint8)
FPS, DRIFT_RATE, RETARGET_PROBABILITY = 30.0, 0.02, 1.0 / 90.0  # drift rates are per frame
CAR_SPAWN_M, CAR_FORGET_M = (60.0, 110.0), 130.0
_DRIVABLE_LUT = drivable_lut([CLASSES.index(name) for name in DRIVABLE])


@dataclass(frozen=True)
class Car:
    """One car, a box on the road; lengths in metres, colour RGB."""

    lateral: float  # centre relative to the road centre line, + right
    distance: float  # depth of the face nearest the camera
    width: float
    height: float
    length: float
    colour: tuple[int, int, int]
    speed: float  # m/s along the road; < 0 oncoming (front visible), 0 parked


@dataclass(frozen=True)
class SceneParams:
    """Everything a frame depends on; lengths in metres, positions as fractions of the image."""

    horizon: float = 0.45  # horizon row / H
    vp_x: float = 0.5  # vanishing point column / W (camera yaw)
    road_width: float = 0.9  # road width at the bottom row / W
    depth_bottom: float = 6.0  # depth of the ground seen by the bottom row
    lateral_offset: float = 0.0  # road centre relative to the camera, + right
    curvature: float = 0.0  # 1/m, + bends right
    lane_count: int = 2
    lane_width: float = 3.5
    centre_style: int = 0  # 0 dashed, 1 solid, 2 double solid
    centre_yellow: bool = False
    edge_lines: bool = True
    dash_length: float = 3.0
    dash_period: float = 12.0
    sidewalk: tuple[float, float] = (2.5, 2.5)  # left, right
    verge: tuple[float, float] = (1.0, 1.0)  # grass between sidewalk and facades
    road_colour: tuple[int, int, int] = (90, 90, 92)
    sidewalk_colour: tuple[int, int, int] = (160, 158, 150)
    verge_colour: tuple[int, int, int] = (80, 125, 55)
    sky_colours: tuple[tuple[int, int, int], ...] = ((90, 140, 220), (190, 210, 235))  # top, low
    cloud_cover: float = 0.3
    layout_seed: int = 0  # roadside buildings, trees, hedges, far skyline
    texture_seed: int = 0
    noise_seed: int = 0
    odometer: float = 0.0  # distance driven along the road
    cars: tuple[Car, ...] = ()
    brightness: float = 1.0
    contrast: float = 1.0
    colour_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    visibility: float = 400.0  # haze distance
    sun_side: int = 1  # side whose facades cast shadows across the road: -1 left, 1 right
    shadow_length: float = 0.6  # shadow reach per metre of facade height (0: overcast)
    shadow_strength: float = 0.6  # brightness factor inside shadows
    noise_sigma: float = 3.0  # sensor noise, grey levels
    blur_sigma: float = 0.5  # pixels at 360 rows


def random_params(rng: np.random.Generator) -> SceneParams:
    """Draw a random scene: perspective, road, roadside, cars, lighting, noise."""
    lanes, lane_w = int(rng.choice([1, 2, 2, 2, 3, 4])), rng.uniform(2.8, 3.8)
    half = lanes * lane_w / 2
    cam_lane = int(rng.integers(lanes // 2 if lanes > 2 else 0, lanes))  # drives on the right
    weather = rng.choice(3, p=[0.6, 0.3, 0.1])  # clear, overcast, dusk
    sky = [((80, 135, 215), (190, 210, 235)), ((165, 170, 178), (205, 208, 212)),
           ((70, 80, 130), (235, 170, 120))][weather]
    pavement = [(165, 163, 155), (165, 110, 95), (190, 178, 150)][int(rng.integers(3))]
    params = SceneParams(
        horizon=rng.uniform(0.35, 0.55), vp_x=rng.uniform(0.35, 0.65),
        road_width=2 * half * rng.uniform(0.09, 0.16), depth_bottom=rng.uniform(4.0, 8.0),
        lateral_offset=half - (cam_lane + 0.5) * lane_w + rng.normal(0, 0.3),
        curvature=float(np.clip(rng.normal(0, 1 / 300), -1 / 100, 1 / 100)),
        lane_count=lanes, lane_width=lane_w, centre_style=int(rng.integers(3)),
        centre_yellow=bool(rng.random() < 0.35), edge_lines=bool(rng.random() < 0.6),
        dash_length=rng.uniform(2.0, 4.0), dash_period=rng.uniform(8.0, 14.0),
        sidewalk=tuple(rng.uniform(1.5, 4.0, 2)), verge=tuple(rng.uniform(0.3, 8.0, 2)),
        road_colour=jitter(rng, (rng.uniform(55, 125),) * 3, 6),
        sidewalk_colour=jitter(rng, pavement, 20),
        verge_colour=jitter(rng, [(80, 125, 55), (135, 130, 80)][int(rng.random() < 0.25)], 15),
        sky_colours=tuple(jitter(rng, c, 20) for c in sky), cloud_cover=rng.uniform(0.0, 0.8),
        layout_seed=int(rng.integers(2**31)), texture_seed=int(rng.integers(2**31)),
        noise_seed=int(rng.integers(2**31)), odometer=rng.uniform(0, 5000),
        brightness=rng.uniform(0.7, 1.25) * (0.8 if weather == 2 else 1.0),
        contrast=rng.uniform(0.75, 1.2), colour_cast=tuple(rng.uniform(0.9, 1.1, 3)),
        visibility=rng.uniform(150, 1000), sun_side=int(rng.choice([-1, 1])),
        shadow_length=0.0 if weather == 1 else rng.uniform(0.0, 1.2),
        shadow_strength=rng.uniform(0.45, 0.75), noise_sigma=rng.uniform(0, 8),
        blur_sigma=rng.uniform(0, 1.0))
    cars: list[Car] = []
    for _ in range(int(rng.integers(0, 7))):
        car = _random_car(rng, params, (params.depth_bottom + 2.0, 90.0))
        if all(abs(c.lateral - car.lateral) > 1.5 or abs(c.distance - car.distance) > 8
               for c in cars):
            cars.append(car)
    return replace(params, cars=tuple(cars))


def _random_car(rng, p: SceneParams, depth_range: tuple[float, float]) -> Car:
    half, width = p.lane_count * p.lane_width / 2, rng.uniform(1.6, 2.0)
    lane = int(rng.integers(p.lane_count))
    lateral = -half + (lane + 0.5) * p.lane_width + rng.normal(0, 0.2)
    speed = rng.uniform(8, 20) * (-1 if p.lane_count >= 2 and lane < p.lane_count // 2 else 1)
    if rng.random() < 0.15:  # parked at the kerb
        lateral, speed = float(rng.choice([-1, 1])) * (half - width / 2 - 0.2), 0.0
    colour = [(240, 240, 240), (25, 25, 28), (160, 162, 168), (170, 30, 30), (30, 60, 150),
              (90, 95, 100), (200, 170, 60), (40, 90, 60)][int(rng.integers(8))]
    return Car(lateral=float(lateral), distance=float(rng.uniform(*depth_range)), width=width,
               height=rng.uniform(1.35, 1.9), length=rng.uniform(3.8, 5.0),
               colour=jitter(rng, colour, 12), speed=float(speed))


def render(params: SceneParams, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene -> image (H, W, 3) uint8 RGB, mask (H, W) uint8 class index."""
    p, h, w = params, int(height), int(width)
    half = p.lane_count * p.lane_width / 2
    g = p.road_width * w / (2 * half)
    cam = Camera(h, w, p.horizon * h, p.vp_x * w, g, p.depth_bottom, p.lateral_offset,
                 0.5 * g * p.curvature * p.depth_bottom ** 2)
    lay = layout(p.layout_seed)
    grain, blotch, cloud = textures(p.texture_seed, h, w)
    img = np.empty((3, h, w), np.float32)
    cls = np.empty((h, w), np.uint8)
    fog = np.zeros((h, w), np.float32)
    r0 = int(np.clip(np.floor(cam.hy - 0.5) + 1, 0, h - 1))  # first row below the horizon
    paint_sky(img, cls, p, cam, cloud, r0)
    paint_far(img, cls, fog, lay, cam, r0)
    paint_ground(img, cls, fog, p, cam, lay, blotch, r0)
    nearness = paint_facades(img, cls, fog, p, cam, lay, blotch)
    img *= np.take(GRAIN, cls) * grain + np.take(BLOTCH, cls) * blotch + np.float32(1)
    for car in sorted(p.cars, key=lambda c: -c.distance):
        paint_car(img, cls, fog, car, cam, nearness, p)
    return finish(img, fog, p), cls


def render_scene(rng: np.random.Generator, height: int,
                 width: int) -> tuple[np.ndarray, np.ndarray]:
    """random_params + render -> image (H, W, 3) uint8 RGB, mask (H, W) uint8."""
    return render(random_params(rng), height, width)


class SceneStream:
    """Video-like frames: the camera drives along one road whose curvature, heading and
    lighting drift slowly while cars move; ``next()`` -> image (H, W, 3) uint8, mask (H, W)."""

    def __init__(self, seed: int = 0, height: int = 360, width: int = 640):
        self.height, self.width = int(height), int(width)
        self._rng = np.random.default_rng(seed)
        self._params = random_params(self._rng)
        self._target = self._params
        self._speed = float(self._rng.uniform(8.0, 16.0))

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """Advance one frame -> image (H, W, 3) uint8 RGB, mask (H, W) uint8."""
        self._params = self._step(self._params)
        return render(self._params, self.height, self.width)

    def _step(self, p: SceneParams) -> SceneParams:
        rng = self._rng
        if rng.random() < RETARGET_PROBABILITY:
            self._target = random_params(rng)
        t = self._target
        eased = {name: getattr(p, name) + DRIFT_RATE * (getattr(t, name) - getattr(p, name))
                 for name in ("curvature", "vp_x", "horizon", "brightness", "contrast")}
        cast = tuple(a + DRIFT_RATE * (b - a) for a, b in zip(p.colour_cast, t.colour_cast))
        cars = []
        for car in p.cars:
            moved = replace(car, distance=car.distance + (car.speed - self._speed) / FPS)
            if not 0.7 * p.depth_bottom < moved.distance < CAR_FORGET_M:
                moved = _random_car(rng, p, CAR_SPAWN_M)
            cars.append(moved)
        return replace(p, **eased, colour_cast=cast, cars=tuple(cars),
                       odometer=p.odometer + self._speed / FPS,
                       noise_seed=int(rng.integers(2**31)))


def drivable_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class map -> (H, W) uint8, 1 where the class is in DRIVABLE, else 0."""
    return _DRIVABLE_LUT[mask]
