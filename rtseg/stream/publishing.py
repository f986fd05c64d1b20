"""The node's publishing thread: masks of each batch -> the topics of each frame's source.

Per frame: `NAME/drivable` and `NAME/classes` (the publisher's `publish_frame`), the
counters, and, when the image topic is on and due (at most `image_fps` per source),
`NAME/image`: the frame as a JPEG, downscaled to `image_width`, with the masks' seq and
stamp (PROTOCOL.md). A failed batch stops the node instead of killing the thread silently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import cv2
import numpy as np

from rtseg.metrics import binary_iou, drivable_lut
from rtseg.stream.feed import Fed
from rtseg.stream.pipeline import Masks
from rtseg.stream.publisher import FrameMeta
from rtseg.stream.stats import NodeStats

log = logging.getLogger("rtseg.node")
JPEG_QUALITY = 80


def publish_loop(settings, wiring, jobs: queue.Queue, stats: NodeStats,
                 stop: threading.Event) -> None:
    """Until a None job: publish every frame of each `(batch, in-flight)` job, then release
    the in-flight slot and mark the job done; a status line every `settings.status_every` s."""
    images = ImageTopic(settings.image_fps, settings.image_width, len(wiring.names))
    while (job := jobs.get()) is not None:
        batch, inflight = job
        try:
            for fed, masks in zip(batch, inflight.result()):
                name = wiring.names[fed.index]
                meta = FrameMeta(seq=fed.frame.seq, stamp_ns=fed.frame.stamp_ns,
                                 frame_id=wiring.sources[fed.index].frame_id, model=wiring.model,
                                 read_ns=fed.frame.read_ns)
                timings = wiring.publisher.publish_frame(
                    name, masks.drivable, masks.classes, meta,
                    class_names=wiring.pipeline.spec.classes, encoding=settings.encoding,
                    timings={"capture": fed.capture_ms, **masks.timings_ms})
                images.maybe_publish(wiring.publisher, name, fed, meta)
                stats.record(name, timings["total"], timings,
                             _demo_iou(fed, masks, settings.drivable), seq=fed.frame.seq)
        except Exception:
            log.exception("publishing a batch failed; stopping the node")
            stop.set()
        finally:
            inflight.release()
            jobs.task_done()  # a node without overlap waits for this (jobs.join())
        if stats.due(settings.status_every):
            log.info("%s: %s", ",".join(wiring.names), stats.status_line())


def queue_messages(frames: int, sources: int, image_topic: bool = False) -> int:
    """ZeroMQ's send queue per subscriber, in messages, that holds `frames` whole frames of
    a node with `sources` sources (the node's ``--hwm`` counts frames).

    A batch sends each source's two masks, its image when the image topic is on, and at
    times its status, back to back. ZeroMQ learns that its I/O thread has sent queued
    messages only in lots of half the queue and at most once a millisecond, so a burst
    longer than the queue loses its tail even for a subscriber that reads everything (three
    demo cameras at a queue of 4 messages: the third camera's masks arrived 9 times in 50);
    one frame more than asked for covers that lag.
    """
    per_frame = sources * (2 + int(image_topic) + 1)  # masks, image, status
    return (frames + 1) * per_frame


class ImageTopic:
    """Rate-limited JPEGs of source frames; `fps` None: off."""

    def __init__(self, fps: float | None, width: int, sources: int) -> None:
        self._period = None if fps is None else 1.0 / fps
        self._width = width
        self._due = [0.0] * sources

    def maybe_publish(self, publisher, name: str, fed: Fed, meta: FrameMeta) -> bool:
        """Publish `NAME/image` for this frame if the source's next image is due."""
        if self._period is None:
            return False
        now = time.monotonic()
        if now < self._due[fed.index]:
            return False
        self._due[fed.index] = max(self._due[fed.index] + self._period, now)
        jpeg, width, height = encode_jpeg(fed.frame.image, self._width)
        return publisher.publish_image(name, jpeg, width, height, meta)


def encode_jpeg(image: np.ndarray, max_width: int) -> tuple[bytes, int, int]:
    """`(H, W, 3) uint8 BGR` -> (baseline JPEG bytes, width, height), downscaled (area) to
    `max_width` when wider, the aspect ratio kept."""
    height, width = image.shape[:2]
    if width > max_width:
        height, width = max(1, round(height * max_width / width)), max_width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} frame as JPEG")
    return buf.tobytes(), width, height


def _demo_iou(fed: Fed, masks: Masks, drivable: tuple[str, ...] = ()) -> float | None:
    """Drivable IoU against the generator's labels (demo frames only): its own drivable
    classes, or with --drivable the generator's classes of those names (any case; None
    when it has none of them, rather than a score against other classes)."""
    if fed.frame.label is None:
        return None
    from rtseg.data.synthetic import CLASSES, drivable_mask

    if not drivable:
        return binary_iou(masks.drivable, drivable_mask(fed.frame.label))
    chosen = {name.lower() for name in drivable}
    ids = [i for i, name in enumerate(CLASSES) if name.lower() in chosen]
    return binary_iou(masks.drivable, drivable_lut(ids)[fed.frame.label]) if ids else None
