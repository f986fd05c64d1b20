"""Drawing internals of :mod:`rtseg.data.synthetic`: camera, roadside layout, textures, painters.

:func:`rtseg.data.synthetic.render` builds a :class:`Camera`, fetches the :func:`layout` of
buildings, trees and hedges, then paints sky, far skyline, ground (road, sidewalks, verges,
markings, facade shadows) and near facades into a (3, H, W) float32 image, an (H, W) uint8 class
map and an (H, W) float32 haze map, applies the :func:`textures`, fills the cars back to front and
:func:`finish` turns the result into an (H, W, 3) uint8 frame. The scene arrives as ``p``, a
``SceneParams`` (cars as ``Car``) read field by field; this module does not import synthetic,
which imports it, so the class names and indices are defined here and re-exported there.
"""

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

CLASSES: tuple[str, ...] = (
    "road", "lane_marking", "sidewalk", "building", "vegetation", "sky", "car")
ROAD, MARKING, SIDEWALK, BUILDING, VEGETATION, SKY, CAR = range(len(CLASSES))

GRAIN = np.float32([0.12, 0.08, 0.10, 0.06, 0.45, 0.0, 0.0])  # texture per class, x colour
BLOTCH = np.float32([0.07, 0.15, 0.07, 0.04, 0.30, 0.0, 0.0])
GAP, HOUSE, TREE, HEDGE = range(4)  # kinds of roadside segment
SEGMENTS_PER_SIDE, FAR_BLOCKS = 300, 200
MARKING_WIDTH_M, DOUBLE_LINE_GAP_M, EDGE_LINE_INSET_M = 0.15, 0.15, 0.3
MIN_MARKING_PX = 1.0  # markings thinner than this on screen are not drawn (nor labelled)
KERB_WIDTH_M, TILE_M, GROUT_FRACTION, GROUT_DARKEN, MIN_TILE_PX = 0.25, 0.5, 0.08, 0.3, 4.0
FLOOR_M, CANOPY_BASE_M, TRUNK_WIDTH_M, TREE_SPACING_M = 3.2, 2.2, 0.4, 5.0
CANOPY_WAVE, CANOPY_FRINGE, FRINGE_MARGIN = 0.15, 0.12, 1.5  # tree tops: waviness, leafy edge
WINDOW_WIDTH, WINDOW_HEIGHT, WINDOW_CENTRE = 0.5, 0.44, 0.55  # fractions of a bay and a floor
CAR_BELT, CAR_CABIN_WIDTH, CAR_WHEEL_M, CAR_CLEARANCE_M = 0.55, 0.85, 0.65, 0.3
MIN_NEARNESS, MAX_NEARNESS = 1e-3, 50.0
SHADOW_TINT = np.float32([0.9, 0.95, 1.05])
WHITE, YELLOW, GLASS = (235.0, 235.0, 228.0), (228.0, 185.0, 55.0), (38.0, 46.0, 58.0)
TYRE, TAIL_LIGHT, HEAD_LIGHT = (20.0, 20.0, 22.0), (200.0, 20.0, 20.0), (250.0, 245.0, 220.0)
NOISE_UNIT = 104.0  # standard deviation of the sum of two uniform bytes


@dataclass(frozen=True)
class Camera:
    """Pinhole view of the flat road: nearness d = (y - hy) / (h - hy), depth zb / d."""

    h: int
    w: int
    hy: float  # horizon row
    vp: float  # vanishing point column
    g: float  # pixels per metre at the bottom row
    zb: float  # depth at the bottom row
    lat: float  # road centre relative to the camera
    bend: float  # curvature: the road centre shifts by bend / d pixels

    def project(self, lateral, height, depth):
        """Road coordinates (metres, arrays of one shape) -> image x, y (pixels)."""
        d = self.zb / np.asarray(depth, np.float64)
        x = self.vp + self.g * d * (self.lat + lateral) + self.bend / d
        return x, self.hy + d * (self.h - self.hy) - np.asarray(height) * self.g * d


@dataclass(frozen=True)
class Layout:
    """Roadside segments on both sides and the far skyline, drawn once per layout seed."""

    edges: np.ndarray  # (2, N + 1) segment starts along the road; left, right side
    kind: np.ndarray  # (2, N) GAP / HOUSE / TREE / HEDGE
    height: np.ndarray  # (2, N) metres
    colour: np.ndarray  # (2, N, 3) float32
    window_m: np.ndarray  # (2, N) window spacing
    far_edges: np.ndarray  # (M + 1,) far skyline blocks, columns / W from the vanishing point
    far_height: np.ndarray  # (M,) far block heights / H
    far_tree: np.ndarray  # (3, 3) tree line sines: amplitude / H, frequency, phase
    far_colours: np.ndarray  # (2, 3) float32, far buildings and far trees

    def segment(self, side: int, along: np.ndarray) -> np.ndarray:
        """Along-road positions (metres) -> segment index on that side (wraps around)."""
        edges = self.edges[side]
        idx = np.searchsorted(edges, np.mod(along, edges[-1]), side="right") - 1
        return np.clip(idx, 0, len(edges) - 2)


def jitter(rng, base, spread) -> tuple[int, int, int]:
    """RGB base plus uniform noise of +-spread per channel, clipped -> int triple."""
    rgb = np.clip(np.asarray(base, float) + rng.uniform(-spread, spread, 3), 0, 255)
    return tuple(int(v) for v in rgb)


def _frac(x):
    return x - np.floor(x)


@lru_cache(maxsize=16)
def layout(seed: int) -> Layout:
    """The (cached) roadside and skyline of one layout seed."""
    rng = np.random.default_rng(seed)
    urban = rng.uniform(0.0, 1.0)
    rest = 0.85 - 0.7 * urban
    shape = (2, SEGMENTS_PER_SIDE)
    kind = rng.choice(4, size=shape, p=[0.15 * rest, 1 - rest, 0.65 * rest, 0.2 * rest])
    height = rng.uniform(np.choose(kind, [0.0, 6.0, 5.0, 0.8]), np.choose(kind, [0, 30, 15, 2.5]))
    facade = rng.choice([[200, 190, 170], [150, 80, 60], [120, 120, 125], [220, 215, 205],
                         [170, 150, 120]], size=shape)
    green = (np.array([60, 95, 40]) + rng.uniform(-15, 25, 3)) * np.where(
        (kind == HEDGE)[..., None], 0.8, 1.0)
    colour = np.where((kind == HOUSE)[..., None], facade, green)
    colour += rng.uniform(-20, 20, shape + (3,))
    widths = rng.uniform(0.01, 0.06, FAR_BLOCKS)
    far_height = rng.uniform(0.01, 0.1, FAR_BLOCKS) * (rng.random(FAR_BLOCKS) < 0.3 + 0.6 * urban)
    far_tree = np.stack([rng.uniform(0.005, 0.03, 3) * rng.uniform(0, 1.5),
                         rng.uniform(3, 40, 3), rng.uniform(0, 2 * np.pi, 3)])
    far_colours = [jitter(rng, (130, 135, 145), 20), jitter(rng, (70, 95, 65), 15)]
    edges = np.concatenate([np.zeros((2, 1)), np.cumsum(rng.uniform(5, 25, shape), 1)], 1)
    return Layout(edges, kind, height, np.clip(colour, 0, 255).astype(np.float32),
                  rng.uniform(2.0, 4.0, shape), np.concatenate([[0], np.cumsum(widths)]) - 3,
                  far_height, far_tree, np.float32(far_colours))


def _smooth_noise(rng, h: int, w: int, cell_y: int, cell_x: int) -> np.ndarray:
    """(h, w) float32 value noise of about unit spread, features of about one cell."""
    grid = rng.standard_normal((h // cell_y + 2, w // cell_x + 2)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def textures(seed: int, h: int, w: int):
    """-> grain (h, w) uniform in [-0.5, 0.5), blotch (h, w), cloud (h, w); all float32."""
    rng = np.random.default_rng(seed)
    grain = rng.random((h, w), dtype=np.float32)
    grain -= np.float32(0.5)
    cell = max(2, w // 48)
    return grain, _smooth_noise(rng, h, w, cell, cell), _smooth_noise(
        rng, h, w, max(2, w // 20), max(4, w // 6))


def paint_sky(img, cls, p, cam: Camera, cloud, r0: int) -> None:
    t = (np.clip((np.arange(r0, dtype=np.float32) + 0.5) / max(cam.hy, 1.0), 0, 1) ** 0.8)
    top, low = (np.float32(c)[:, None, None] for c in p.sky_colours)
    gradient = top * (1 - t)[None, :, None] + low * t[None, :, None]  # (3, r0, 1)
    cover = cloud[:r0] - np.float32(1.5 - 3.0 * p.cloud_cover)
    np.clip(cover * np.float32(0.8), 0, 1, out=cover)
    np.multiply(low * 0.3 + 175 - gradient, cover, out=img[:, :r0])
    img[:, :r0] += gradient
    cls[:r0] = SKY


def paint_far(img, cls, fog, lay: Layout, cam: Camera, r0: int) -> None:
    xs = (np.arange(cam.w) + 0.5 - cam.vp) / cam.w
    idx = np.clip(np.searchsorted(lay.far_edges, xs) - 1, 0, FAR_BLOCKS - 1)
    amp, freq, phase = lay.far_tree
    trees = cam.h * (amp[:, None] * (1 + np.sin(freq[:, None] * xs + phase[:, None]))).sum(0)
    above = (cam.hy - (np.arange(r0) + 0.5))[:, None]
    veg = above < trees[None]
    bld = (above < lay.far_height[idx][None] * cam.h) & ~veg
    for region, label, colour in ((bld, BUILDING, lay.far_colours[0]),
                                  (veg, VEGETATION, lay.far_colours[1])):
        np.copyto(img[:, :r0], colour[:, None, None], where=region[None])
        np.copyto(cls[:r0], np.uint8(label), where=region)
        np.copyto(fog[:r0], np.float32(0.5), where=region)


def paint_ground(img, cls, fog, p, cam: Camera, lay: Layout, blotch, r0):
    """Road, kerbs, paved sidewalks, grass verges, markings and facade shadows below r0."""
    d = ((np.arange(r0, cam.h) + 0.5 - cam.hy) / (cam.h - cam.hy)).astype(np.float32)
    z, ppm = cam.zb / d, cam.g * d
    centre = cam.vp + ppm * cam.lat + cam.bend / d
    x = np.arange(cam.w, dtype=np.float32) + 0.5

    def beyond(metres):  # (rows, W) bool: right of a lateral position (metres, + right)
        return x > (centre + np.float32(metres) * ppm)[:, None]

    half, gi, gc = p.lane_count * p.lane_width / 2, img[:, r0:], cls[r0:]
    paved = beyond(-half - p.sidewalk[0]) & ~beyond(half + p.sidewalk[1])
    road = beyond(-half) & ~beyond(half)
    kerb = paved & ~road & beyond(-half - KERB_WIDTH_M) & ~beyond(half + KERB_WIDTH_M)
    kerb_colour = np.minimum(np.float32(p.sidewalk_colour) * 1.2 + 20, 255)
    for channel, value in zip(gi, p.verge_colour):
        channel.fill(value)
    for where, colour, label in ((paved, p.sidewalk_colour, SIDEWALK), (road, p.road_colour, ROAD),
                                 (kerb, kerb_colour, SIDEWALK)):
        np.copyto(gi, np.float32(colour)[:, None, None], where=where[None])
        np.copyto(gc, np.uint8(label), where=where)
    gc[~paved] = VEGETATION
    u = (x - centre[:, None]) / ppm[:, None]  # lateral position, metres
    along = z + p.odometer
    grout = (_frac(along / TILE_M) < GROUT_FRACTION)[:, None] | (
        _frac((np.abs(u) - half - KERB_WIDTH_M) / TILE_M) < GROUT_FRACTION)
    grout &= paved & ~road & ~kerb & (ppm * TILE_M > MIN_TILE_PX)[:, None]
    np.multiply(gi, np.float32(1 - GROUT_DARKEN), out=gi, where=grout[None])
    _paint_markings(gi, gc, u, along, ppm, p)
    if p.shadow_length > 0:  # facades on the sun side shade the ground up to a reach
        side = int(p.sun_side > 0)
        seg = lay.segment(side, along)
        reach = lay.height[side][seg] * (lay.kind[side][seg] != GAP) * p.shadow_length
        shadow = beyond(p.sun_side * (half + p.sidewalk[side] + p.verge[side] - reach))
        shadow = (shadow == side) & ((lay.kind[side][seg] != TREE)[:, None] | (blotch[r0:] > -0.3))
        for channel, k in zip(gi, np.float32(p.shadow_strength) * SHADOW_TINT):
            np.multiply(channel, k, out=channel, where=shadow)
    fog[r0:] = (1 - np.exp(-z / p.visibility))[:, None]


def _marking_lines(p) -> list[tuple[float, bool, tuple[float, ...]]]:
    """-> (lateral position, dashed, colour) of every painted line."""
    half, lines = p.lane_count * p.lane_width / 2, []
    centre_colour = YELLOW if p.centre_yellow else WHITE
    for k in range(1, p.lane_count):
        pos = -half + k * p.lane_width
        if p.lane_count % 2 or k != p.lane_count // 2:
            lines.append((pos, True, WHITE))
        elif p.centre_style == 2:
            lines += [(pos + s * DOUBLE_LINE_GAP_M, False, centre_colour) for s in (-1, 1)]
        else:
            lines.append((pos, p.centre_style == 0, centre_colour))
    if p.edge_lines:
        lines += [(s * (half - EDGE_LINE_INSET_M), False, WHITE) for s in (-1, 1)]
    return lines


def _paint_markings(gi, gc, u, along, ppm, p) -> None:
    visible = ppm * MARKING_WIDTH_M >= MIN_MARKING_PX
    if not visible.any():
        return
    top = int(np.argmax(visible))  # ppm grows downwards, so the visible rows are the lowest
    dash = (_frac(along[top:] / p.dash_period) < p.dash_length / p.dash_period)[:, None]
    for pos, dashed, colour in _marking_lines(p):
        band = (np.abs(u[top:] - pos) < MARKING_WIDTH_M / 2) & (gc[top:] == ROAD)
        if dashed:
            band &= dash
        np.copyto(gi[:, top:], np.float32(colour)[:, None, None], where=band[None])
        np.copyto(gc[top:], np.uint8(MARKING), where=band)


def _facade_columns(p, cam: Camera, lay: Layout, side: int):
    """Nearest facade per column on one side -> (W,) nearness (0: none), (W,) along-road m."""
    half = p.lane_count * p.lane_width / 2
    a = cam.g * (cam.lat + (2 * side - 1) * (half + p.sidewalk[side] + p.verge[side]))
    a = a if abs(a) > 1e-9 else 1e-9  # the camera stands on the facade line: degenerate
    dx = np.arange(cam.w) + 0.5 - cam.vp  # solve a d^2 - dx d + bend = 0 for the nearness d
    disc = dx * dx - 4 * a * cam.bend
    root = np.sqrt(np.maximum(disc, 0))
    d = np.maximum((dx + root) / (2 * a), (dx - root) / (2 * a))
    d = np.where((disc >= 0) & (d > MIN_NEARNESS), np.minimum(d, MAX_NEARNESS), 0.0)
    along = cam.zb / np.maximum(d, MIN_NEARNESS) + p.odometer
    d[lay.kind[side][lay.segment(side, along)] == GAP] = 0.0
    return d, along


def _facade_block(cam: Camera, lay: Layout, side: int, d, along, blotch):
    """Pixels of one facade side within its bounding box -> (row slice, column slice,
    (h, w) bool region, (h, w) float32 metres above ground, per-column segment index)."""
    columns = np.flatnonzero(d > 0)
    if columns.size == 0:
        return None
    xs = slice(columns[0], columns[-1] + 1)
    d, along = d[xs], along[xs]
    seg = lay.segment(side, along)
    kind, ppm = lay.kind[side][seg], cam.g * d
    ground = cam.hy + d * (cam.h - cam.hy)
    top = lay.height[side][seg] * (1 - CANOPY_WAVE * (kind != HOUSE) * (
        1 + np.sin(along * 0.9) * np.sin(along * 0.4)))
    lowest = np.min(np.where(d > 0, ground - FRINGE_MARGIN * top * ppm, cam.h))
    ys = slice(int(np.clip(np.floor(lowest), 0, cam.h)),
               int(np.clip(np.ceil(ground[d > 0].max()), 0, cam.h)))
    rows = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] + 0.5
    up = (ground.astype(np.float32) - rows) / np.maximum(ppm, 1e-6).astype(np.float32)
    leafy = (kind != HOUSE)[None, :]
    fringe = 1 + CANOPY_FRINGE * leafy * blotch[ys, xs]
    region = (up >= 0) & (up < top.astype(np.float32) * fringe)
    trunk = _frac(along / TREE_SPACING_M) < TRUNK_WIDTH_M / TREE_SPACING_M
    region &= (d > 0)[None, :] & ((up >= CANOPY_BASE_M) | (kind != TREE)[None, :]
                                  | trunk[None, :])
    return ys, xs, region, up, seg


def paint_facades(img, cls, fog, p, cam: Camera, lay: Layout, blotch):
    """Buildings with windows, trees and hedges on both sides -> (W,) nearness of the front."""
    cols = [_facade_columns(p, cam, lay, side) for side in (0, 1)]
    left_front = cols[0][0] > cols[1][0]
    taken = np.zeros(cls.shape, bool)
    for side, (d, along) in enumerate(cols):
        block = _facade_block(cam, lay, side, d, along, blotch)
        if block is None:
            continue
        ys, xs, region, up, seg = block
        if side:
            region &= ~(taken[ys, xs] & left_front[None, xs])
        else:
            taken[ys, xs] = region
        kind, window_m = lay.kind[side][seg], lay.window_m[side][seg]
        np.copyto(img[:, ys, xs], lay.colour[side][seg].T[:, None, :], where=region[None])
        labels = np.where(kind == HOUSE, BUILDING, VEGETATION).astype(np.uint8)
        np.copyto(cls[ys, xs], labels[None, :], where=region)
        win = (kind == HOUSE) & (np.abs(_frac(along[xs] / window_m) - 0.5) < WINDOW_WIDTH / 2)
        win = region & win[None] & (np.abs(_frac(up / FLOOR_M) - WINDOW_CENTRE) < WINDOW_HEIGHT / 2)
        win &= (up > FLOOR_M) & (up < (lay.height[side][seg] - 1.0).astype(np.float32)[None])
        np.copyto(img[:, ys, xs], np.float32(GLASS)[:, None, None], where=win[None])
        haze = 1 - np.exp(-cam.zb / np.maximum(d[xs], MIN_NEARNESS) / p.visibility)
        np.copyto(fog[ys, xs], haze.astype(np.float32)[None], where=region)
    return np.where(left_front, cols[0][0], cols[1][0])


def _fill(img, cls, fog, pts, colour, label, haze) -> None:
    """Fill one polygon (N, 2) pixels into image, fog and, when labelled, the class map."""
    limit = 8.0 * max(cls.shape)
    q = [np.round(np.clip(pts, -limit, limit) * 16).astype(np.int32)]  # 4 fractional bits
    for channel, value in zip(img, colour):
        cv2.fillPoly(channel, q, float(value), cv2.LINE_8, 4)
    cv2.fillPoly(fog, q, float(haze), cv2.LINE_8, 4)
    if label is not None:
        cv2.fillPoly(cls, q, int(label), cv2.LINE_8, 4)


def _box(cam: Camera, x: tuple, y: tuple, z: tuple) -> np.ndarray:
    """Convex hull (N, 2) pixels of a box in road coordinates (metres)."""
    corners = np.array([(a, b, c) for a in x for b in y for c in z], np.float64)
    px, py = cam.project(corners[:, 0], corners[:, 1], corners[:, 2])
    return cv2.convexHull(np.stack([px, py], 1).astype(np.float32))[:, 0]


def paint_car(img, cls, fog, car, cam: Camera, nearness, p) -> None:
    """Shadow, wheels, body, near face, cabin, roof and lights of one car, back to front."""
    z0, z1, hw, x = car.distance, car.distance + car.length, car.width / 2, car.lateral
    column = int(np.clip(cam.project(x, 0.0, z0)[0], 0, cam.w - 1))
    if z0 < 0.5 * cam.zb or nearness[column] > cam.zb / z0:  # behind the camera or a facade
        return
    body, belt = np.float32(car.colour), CAR_BELT * car.height
    cabin = ((x - CAR_CABIN_WIDTH * hw, x + CAR_CABIN_WIDTH * hw),
             (z0 + 0.2 * car.length, z1 - 0.25 * car.length))
    light = HEAD_LIGHT if car.speed < 0 else TAIL_LIGHT
    parts = [((x - hw - 0.1, x + hw + 0.1), (0, 0), (z0 - 0.2, z1),
              np.float32(p.road_colour) * 0.3, None)]
    r = CAR_WHEEL_M / 2
    parts += [((wx, wx + 0.25), (0, 2 * r), (wz - r, wz + r), TYRE, CAR)
              for wz in (z0 + 2 * r, z1 - 2 * r) for wx in (x - hw, x + hw - 0.25)]
    parts += [((x - hw, x + hw), (CAR_CLEARANCE_M, belt), (z0, z1), body * 0.8, CAR),
              ((x - hw, x + hw), (CAR_CLEARANCE_M, belt), (z0, z0), body, CAR),
              (cabin[0], (belt, car.height), cabin[1], GLASS, CAR),
              (cabin[0], (car.height - 0.08, car.height), cabin[1], body, CAR)]
    parts += [((lx, lx + 0.3), (belt - 0.22, belt - 0.08), (z0, z0), light, CAR)
              for lx in (x - hw + 0.05, x + hw - 0.35)]
    haze = 1 - np.exp(-z0 / p.visibility)
    for xs, ys, zs, colour, label in parts:
        _fill(img, cls, fog, _box(cam, xs, ys, zs), colour, label, haze)


def finish(img, fog, p) -> np.ndarray:
    """(3, H, W) float32 -> haze, lighting, blur and sensor noise -> (H, W, 3) uint8."""
    gain = np.float32(p.brightness) * np.float32(p.colour_cast) * np.float32(p.contrast)
    offset = np.float32(p.brightness) * np.float32(p.colour_cast) * 128 * (1 - p.contrast)
    haze = np.float32(p.sky_colours[1])
    clear = 1 - fog
    for channel, k, add, grey in zip(img, gain, offset, haze):  # (c (1 - f) + h f) k + add
        channel *= clear
        channel += fog * grey
        channel *= k
        channel += add
    sigma = p.blur_sigma * img.shape[1] / 360.0
    if sigma > 0.2:
        for channel in img:
            cv2.GaussianBlur(channel, (0, 0), sigma, dst=channel)
    rng, scale = np.random.default_rng(p.noise_seed), np.float32(p.noise_sigma / NOISE_UNIT)
    for channel in img if p.noise_sigma > 0 else ():  # channel by channel: small temporaries
        raw = np.frombuffer(rng.bytes(2 * channel.size), np.uint8).reshape((2,) + channel.shape)
        channel += (raw[0] + raw[1].astype(np.float32) - np.float32(255)) * scale
    np.clip(img, 0, 255, out=img)
    return cv2.merge(list(img.astype(np.uint8)))
