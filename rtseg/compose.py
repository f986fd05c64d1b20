"""One camera's messages -> overlays of whole frames, for the viewer and the recorder's video.

A node publishes `NAME/drivable`, `NAME/classes` and, rate-limited, `NAME/image` for a
frame, all with that frame's seq and stamp. `Compositor.add` collects them per frame and
returns the frame's parts once it is complete, and `draw` makes the overlay of them (a
viewer that is behind draws only the newest complete frame). Complete means: every mask
kind subscribed to, plus the image while images arrive. With no image for `image_grace_s`
and `IMAGE_GRACE_FRAMES` frames (from the start, too), masks alone make a frame, so a node
without `--image-topic` still shows its coloured masks. No torch here.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from rtseg.errors import RtsegError
from rtseg.imagefile import ImageFileError, decode_image
from rtseg.palette import overlay
from rtseg.protocol import MaskHeader, ProtocolError

log = logging.getLogger("rtseg.compose")

MASK_KINDS = ("classes", "drivable")
IMAGE_KIND = "image"
MAX_PENDING = 32  # frames waiting for their other parts; older ones are forgotten
IMAGE_GRACE_FRAMES = 3  # frames without an image before masks alone make a frame


@dataclass
class FrameParts:
    """What has arrived of one frame: its masks by kind, and its JPEG if any."""

    seq: int
    stamp_ns: int
    masks: dict[str, tuple[MaskHeader, np.ndarray]] = field(default_factory=dict)
    jpeg: np.ndarray | None = None  # (N,) uint8, the JPEG file


@dataclass(frozen=True)
class Composite:
    """A drawn frame: `bgr` ``(H, W, 3) uint8``, the class names of its classes mask (() if
    none), the node's stage timings (ms) and whether it was drawn over the camera image."""

    seq: int
    stamp_ns: int
    bgr: np.ndarray
    class_names: tuple[str, ...]
    latency_ms: dict
    over_image: bool


class Compositor:
    """Pairs one camera's masks and images by (seq, stamp_ns) and draws complete frames."""

    def __init__(self, kinds: Iterable[str], image_grace_s: float = 2.0) -> None:
        """`kinds`: the kinds subscribed to ("classes", "drivable", "image")."""
        kinds = set(kinds)
        self._masks = tuple(k for k in MASK_KINDS if k in kinds)
        if not self._masks:
            raise ValueError("a Compositor needs a classes or drivable topic to draw")
        self._images = IMAGE_KIND in kinds
        self._grace_s = image_grace_s
        self._last_image = time.monotonic()  # wait for images at first, too
        self._without_image = 0  # frames begun since the last image
        self._frames: OrderedDict[tuple[int, int], FrameParts] = OrderedDict()

    def add(self, header: MaskHeader, data: np.ndarray) -> FrameParts | None:
        """Take one decoded message (``(H, W) uint8`` mask or ``(N,) uint8`` JPEG); the
        parts of its frame if that frame is now complete (for `draw`), else None."""
        key = (header.seq, header.stamp_ns)
        parts = self._frames.get(key)
        if parts is None:
            parts = self._frames[key] = FrameParts(header.seq, header.stamp_ns)
            self._without_image += 1
            while len(self._frames) > MAX_PENDING:
                self._frames.popitem(last=False)
        if header.kind == IMAGE_KIND:
            parts.jpeg = data
            self._last_image, self._without_image = time.monotonic(), 0
        elif header.kind in self._masks:
            parts.masks[header.kind] = (header, data)
        if not self._complete(parts):
            return None
        self._forget_up_to(key)
        return parts

    def _complete(self, parts: FrameParts) -> bool:
        if any(kind not in parts.masks for kind in self._masks):
            return False
        if parts.jpeg is not None or not self._images:
            return True
        recent = time.monotonic() - self._last_image < self._grace_s
        return not (recent or self._without_image <= IMAGE_GRACE_FRAMES)

    def _forget_up_to(self, key: tuple[int, int]) -> None:
        """Drop this frame and every frame that arrived before it (they never will finish)."""
        while self._frames:
            oldest, _ = self._frames.popitem(last=False)
            if oldest == key:
                return



def draw(parts: FrameParts) -> Composite:
    """The overlay of a complete frame (rtseg.palette.overlay).

    Raises:
        rtseg.imagefile.ImageFileError: the frame's JPEG cannot be decoded.
    """
    classes = parts.masks.get("classes")
    drivable = parts.masks.get("drivable")
    image = None if parts.jpeg is None else decode_image(parts.jpeg.tobytes())
    names = classes[0].classes if classes else ()
    bgr = overlay(image, classes[1] if classes else None, names,
                  drivable[1] if drivable else None)
    latency = (classes or drivable)[0].latency_ms
    return Composite(parts.seq, parts.stamp_ns, bgr, names, latency, image is not None)


def overlay_jpeg(composite: Composite, quality: int) -> np.ndarray:
    """The drawn frame as a JPEG file ``(N,) uint8`` at `quality` (0-100)."""
    import cv2

    ok, jpeg = cv2.imencode(".jpg", composite.bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RtsegError(f"OpenCV could not encode a {composite.bgr.shape} overlay as JPEG")
    return jpeg.reshape(-1)


def overlay_message(camera: str, parts: FrameParts, composite: Composite,
                    quality: int) -> tuple[MaskHeader, np.ndarray]:
    """`CAMERA/overlay`: the drawn frame as an image message (JPEG ``(N,) uint8``) with
    the seq, stamp and frame_id of the frame's masks, for `rtseg record --overlay` and
    `rtseg foxglove` (rtseg.ros2msg makes it a CompressedImage)."""
    jpeg = overlay_jpeg(composite, quality)
    mask = next(iter(parts.masks.values()))[0]
    height, width = composite.bgr.shape[:2]
    header = replace(mask, topic=f"{camera}/overlay", kind="image", encoding="jpeg",
                     width=width, height=height, classes=())
    return header, jpeg


def receive_frames(sub, compositors: dict[str, Compositor], stopped: Callable[[], bool],
                   on_frame: Callable[[str, FrameParts], None],
                   on_message: Callable[[MaskHeader, np.ndarray], None] | None = None) -> None:
    """The receive loop of a live consumer (`rtseg view`, `rtseg foxglove`), until
    `stopped()`: each message goes to `on_message` (if given) and to its camera's
    compositor; once the socket has nothing more waiting, `on_frame(camera, parts)` gets
    each camera's newest complete frame, so a slow moment never builds a queue. `sub` is a
    rtseg.client.MaskSubscriber; a malformed message is logged and skipped."""
    newest: dict[str, FrameParts] = {}
    while not stopped():
        try:
            header, data = sub.recv(timeout_ms=0 if newest else 200)
        except TimeoutError:
            for camera, parts in newest.items():
                on_frame(camera, parts)
            newest.clear()
            continue
        except ProtocolError as exc:
            log.warning("skipped a message: %s", exc)
            continue
        if on_message is not None:
            on_message(header, data)
        camera = header.topic.rpartition("/")[0]
        if camera in compositors:
            done = compositors[camera].add(header, data)
            if done is not None:
                newest[camera] = done


def draw_or_skip(camera: str, parts: FrameParts) -> Composite | None:
    """`draw(parts)`, or None with a warning when the frame's JPEG cannot be decoded."""
    try:
        return draw(parts)
    except ImageFileError as exc:
        log.warning("skipped a frame of %s: %s", camera, exc)
        return None
