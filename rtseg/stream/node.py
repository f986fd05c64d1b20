"""The streaming node: source -> pipeline -> two topics on a PUB socket, until stopped.

Topics are `NAME/drivable` and `NAME/classes` (PROTOCOL.md). A status line goes to the log
every few seconds; SIGINT/SIGTERM stop the loop, and threads and sockets are closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from rtseg.backends import Backend, load_backend
from rtseg.config import RunConfig
from rtseg.metrics import binary_iou
from rtseg.protocol import DRIVABLE_CLASSES
from rtseg.signals import on_stop_signals
from rtseg.stream.pipeline import Masks, Pipeline
from rtseg.stream.publisher import MaskPublisher
from rtseg.stream.sources import Frame, Source, SourceSpec, open_source
from rtseg.stream.stats import NodeStats

log = logging.getLogger("rtseg.node")


@dataclass(frozen=True)
class NodeReport:
    """What a finished run did: counts, rates and latency percentiles (ms)."""

    name: str
    endpoint: str
    published: int
    dropped: int
    seconds: float
    fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    demo_drivable_iou: float | None

    def summary(self) -> str:
        """One line for the end of a run."""
        line = (f"{self.name}: published {self.published} frames in {self.seconds:.1f} s "
                f"({self.fps:.1f} fps), dropped {self.dropped}, latency p50 "
                f"{self.latency_p50_ms:.1f} ms p99 {self.latency_p99_ms:.1f} ms")
        if self.demo_drivable_iou is not None:
            line += f", drivable IoU vs truth {self.demo_drivable_iou:.3f}"
        return line


def run_node(cfg: RunConfig, stop: threading.Event | None = None,
             on_ready: Callable[[str], None] | None = None) -> NodeReport:
    """Run until the source ends, `max_frames` are published, or `stop` is set / a signal.

    `on_ready(endpoint)` is called once the socket is bound, the model loaded and the source
    open, before the first frame is read (tests use it to learn a `:*` port and connect).
    """
    stop = stop or threading.Event()
    with ExitStack() as stack:
        publisher = stack.enter_context(MaskPublisher(cfg.bind, hwm=cfg.hwm,
                                                      allow_remote=cfg.allow_remote))
        source = stack.enter_context(open_source(_source_spec(cfg)))
        backend = stack.enter_context(load_backend(_model_name(cfg), cfg.device))
        stack.enter_context(on_stop_signals(stop.set))
        name = cfg.name or source.name
        log.info("%s: %s on %s -> %s (topics %s/drivable, %s/classes)", name,
                 backend.spec.name, source.frame_id, publisher.endpoint, name, name)
        if on_ready is not None:
            on_ready(publisher.endpoint)
        stats = _loop(cfg, name, source, Pipeline(backend), backend, publisher, stop)
    report = stats.report()
    return NodeReport(name=name, endpoint=publisher.endpoint, **report)


def _loop(cfg: RunConfig, name: str, source: Source, pipeline: Pipeline, backend: Backend,
          publisher: MaskPublisher, stop: threading.Event) -> NodeStats:
    stats = NodeStats(source, publisher)
    next_due = time.perf_counter()
    while not stop.is_set():
        frame = source.read(timeout=0.5)
        if frame is None:
            if source.exhausted:
                break
            continue
        masks = pipeline(frame.image)
        latency = _publish(cfg, name, source, frame, masks, backend, publisher)
        stats.record(latency, _demo_iou(frame, masks))
        if stats.due(cfg.status_every):
            log.info("%s: %s", name, stats.status_line())
        if cfg.max_frames is not None and stats.published >= cfg.max_frames:
            break
        if cfg.fps:
            next_due = max(next_due + 1.0 / cfg.fps, time.perf_counter())
            stop.wait(max(0.0, next_due - time.perf_counter()))
    return stats


def _publish(cfg: RunConfig, name: str, source: Source, frame: Frame, masks: Masks,
             backend: Backend, publisher: MaskPublisher) -> float:
    """Send both topics for one frame; returns capture->publish latency in ms."""
    spec = backend.spec
    start = time.time_ns()
    timings = dict(masks.timings_ms)
    common = {"seq": frame.seq, "stamp_ns": frame.stamp_ns, "frame_id": source.frame_id,
              "model": spec.name}
    timings["total"] = (time.time_ns() - frame.stamp_ns) / 1e6
    publisher.publish(f"{name}/drivable", "drivable", masks.drivable, classes=DRIVABLE_CLASSES,
                      encoding=cfg.encoding, latency_ms=timings, **common)
    timings["publish"] = (time.time_ns() - start) / 1e6
    timings["total"] = (time.time_ns() - frame.stamp_ns) / 1e6
    classes_encoding = "mono8" if cfg.encoding == "bits" else cfg.encoding
    publisher.publish(f"{name}/classes", "classes", masks.classes, classes=spec.classes,
                      encoding=classes_encoding, latency_ms=timings, **common)
    return (time.time_ns() - frame.stamp_ns) / 1e6


def _demo_iou(frame: Frame, masks: Masks) -> float | None:
    """Drivable IoU against the generator's labels (demo frames only)."""
    if frame.label is None:
        return None
    from rtseg.data.synthetic import drivable_mask

    return binary_iou(masks.drivable, drivable_mask(frame.label))


def _model_name(cfg: RunConfig) -> str:
    """The checkpoint, manifest or engine to load; with --engine, a cached engine."""
    if cfg.model is None and cfg.source != "demo":
        log.warning("no --model given: using the bundled demo checkpoint, trained on "
                    "synthetic scenes only")
    model = cfg.model or "demo"
    if cfg.engine == "torch" or model.endswith((".json", ".onnx", ".engine", ".pt2")):
        return model
    from rtseg.export.cache import cached_engine

    return str(cached_engine(model, cfg.engine, cfg.device, cfg.engine_cache))


def _source_spec(cfg: RunConfig) -> SourceSpec:
    return SourceSpec(spec=cfg.source, pace=cfg.pace, loop=cfg.loop, fps=cfg.source_fps,
                      demo_height=cfg.demo_size[0], demo_width=cfg.demo_size[1])
