"""The streaming node: sources -> pipeline -> two topics per source on one PUB socket.

Three stages overlap on their own threads: the sources' readers (capture, decode), the
submitting thread (batch the newest frame of each source, preprocess, infer; on CUDA only
enqueue), and the publishing thread (masks, both topics, counters). Topics are
`NAME/drivable` and `NAME/classes` (PROTOCOL.md), one NAME per source, each with the seq
of its own source. A status line goes to the log every few seconds; SIGINT/SIGTERM stop
the loop, and threads and sockets are closed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from rtseg.backends import Backend, load_backend
from rtseg.config import RunConfig
from rtseg.errors import RtsegError
from rtseg.metrics import binary_iou
from rtseg.protocol import DRIVABLE_CLASSES
from rtseg.signals import on_stop_signals
from rtseg.stream.feed import Fed, FrameFeed
from rtseg.stream.pipeline import Masks, Pipeline
from rtseg.stream.publisher import MaskPublisher
from rtseg.stream.sources import Source, SourceSpec, open_source
from rtseg.stream.stats import NodeStats

log = logging.getLogger("rtseg.node")

# Decoded frames alive at once: one decoding, one waiting in the feed, and at most one
# per CUDA pipeline slot (3); a ring of 8 is never overwritten while still in use.
PINNED_RING = 8


@dataclass(frozen=True)
class NodeReport:
    """What a finished run did: counts, rates, latency percentiles (ms), per-stage times."""

    name: str
    endpoint: str
    published: int
    dropped: int
    seconds: float
    fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    demo_drivable_iou: float | None
    per_name: dict = field(default_factory=dict)
    stages_ms: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the end of a run."""
        line = (f"{self.name}: published {self.published} frames in {self.seconds:.1f} s "
                f"({self.fps:.1f} fps), dropped {self.dropped}, latency p50 "
                f"{self.latency_p50_ms:.1f} ms p99 {self.latency_p99_ms:.1f} ms")
        if self.demo_drivable_iou is not None:
            line += f", drivable IoU vs truth {self.demo_drivable_iou:.3f}"
        return line


@dataclass(frozen=True)
class Wiring:
    """What the loop runs with: named sources, a pipeline and the socket."""

    names: tuple[str, ...]
    sources: tuple[Source, ...]
    pipeline: object  # Pipeline or CudaPipeline: submit(images) -> in-flight batch
    model: str
    publisher: MaskPublisher


def run_node(cfg: RunConfig, stop: threading.Event | None = None,
             on_ready: Callable[[str], None] | None = None,
             sources: Sequence[Source] | None = None, backend: Backend | None = None,
             on_stats: Callable[[NodeStats], None] | None = None) -> NodeReport:
    """Run until every source ends, `max_frames` are published, or `stop` is set / a signal.

    `on_ready(endpoint)` is called once the socket is bound, the model loaded and the
    sources open, before the first frame is read (tests use it to learn a `:*` port).
    `sources` / `backend`: already open ones to use instead of `cfg.source` / `cfg.model`
    (the benchmark's in-memory frames and engine); the sources are closed at the end, the
    backend is left open for its owner.
    `on_stats(stats)` is called with the live counters before the first frame (the
    benchmark restarts them after its warm-up).
    """
    stop = stop or threading.Event()
    with ExitStack() as stack:
        publisher = stack.enter_context(MaskPublisher(cfg.bind, hwm=cfg.hwm,
                                                      allow_remote=cfg.allow_remote))
        opened = tuple(stack.enter_context(s) for s in (sources or _open_sources(cfg)))
        if backend is None:  # one passed in stays open: its owner closes it
            backend = stack.enter_context(load_backend(_model_name(cfg, len(opened)),
                                                       cfg.device))
        stack.enter_context(on_stop_signals(stop.set))
        wiring = Wiring(topic_names(cfg.names, opened), opened,
                        make_pipeline(backend, cfg, opened),
                        backend.spec.name, publisher)
        for name, source in zip(wiring.names, opened):
            log.info("%s: %s on %s -> %s (topics %s/drivable, %s/classes)", name,
                     backend.spec.name, source.frame_id, publisher.endpoint, name, name)
        if on_ready is not None:
            on_ready(publisher.endpoint)
        stats = _run_stages(cfg, wiring, stop, on_stats)
    return NodeReport(name=",".join(wiring.names), endpoint=publisher.endpoint, **stats.report())


def make_pipeline(backend: Backend, cfg: RunConfig, sources: Sequence[Source] = ()):
    """CudaPipeline for a CUDA backend (pinned buffers, streams, GPU pre/post; video files
    then decode straight into pinned memory); otherwise the host Pipeline with the CPU's
    cheap upsampling of class maps."""
    if getattr(backend.device, "type", "cpu") == "cuda":
        from rtseg.stream.cuda_pipeline import CudaPipeline, pinned_array

        for source in sources:
            if hasattr(source, "decode_into"):
                source.decode_into(pinned_array, count=PINNED_RING)
        return CudaPipeline(backend, graphs=cfg.cuda_graphs)
    return Pipeline(backend, upsample="classes")


def topic_names(given: tuple[str, ...] | None, sources: Sequence[Source]) -> tuple[str, ...]:
    """--name values, or the sources' names made unique (a second `front` becomes `front_2`)."""
    if given is not None:
        return tuple(given)
    names: list[str] = []
    for source in sources:
        name, n = source.name, 2
        while name in names:
            name, n = f"{source.name}_{n}", n + 1
        names.append(name)
    return tuple(names)


def _run_stages(cfg: RunConfig, wiring: Wiring, stop: threading.Event,
                on_stats: Callable[[NodeStats], None] | None) -> NodeStats:
    """Submit batches on this thread and publish them on another, until done."""
    feed = FrameFeed(wiring.sources)
    stats = NodeStats(feed.captured, lambda: sum(map(feed.dropped, range(len(wiring.sources))))
                      + wiring.publisher.dropped)
    if on_stats is not None:
        on_stats(stats)
    depth = max(1, getattr(wiring.pipeline, "slots", 2) - 1)
    jobs: queue.Queue = queue.Queue(maxsize=depth)
    publishing = threading.Thread(target=_publish_loop, args=(cfg, wiring, jobs, stats, stop),
                                  name="rtseg-publish", daemon=True)
    publishing.start()
    try:
        _submit_loop(cfg, wiring, feed, jobs, stop)
    finally:
        jobs.put(None)
        publishing.join()
        feed.close()
    return stats


def _submit_loop(cfg: RunConfig, wiring: Wiring, feed: FrameFeed, jobs: queue.Queue,
                 stop: threading.Event) -> None:
    submitted, next_due = 0, time.perf_counter()
    while not stop.is_set():
        batch = feed.next_batch(timeout=0.5)
        if batch is None:
            break
        if not batch:
            continue
        if cfg.max_frames is not None:
            batch = batch[:cfg.max_frames - submitted]
        jobs.put((batch, wiring.pipeline.submit([fed.frame.image for fed in batch])))
        submitted += len(batch)
        if cfg.max_frames is not None and submitted >= cfg.max_frames:
            break
        if cfg.fps:
            next_due = max(next_due + 1.0 / cfg.fps, time.perf_counter())
            stop.wait(max(0.0, next_due - time.perf_counter()))


def _publish_loop(cfg: RunConfig, wiring: Wiring, jobs: queue.Queue, stats: NodeStats,
                  stop: threading.Event) -> None:
    """Masks of each submitted batch -> both topics of each frame's source; never raises
    past a failed batch without stopping the node."""
    while (job := jobs.get()) is not None:
        batch, inflight = job
        try:
            for fed, masks in zip(batch, inflight.result()):
                latency, timings = _publish(cfg, wiring, fed, masks)
                stats.record(wiring.names[fed.index], latency, timings, _demo_iou(fed, masks))
        except Exception:
            log.exception("publishing a batch failed; stopping the node")
            stop.set()
        finally:
            inflight.release()
        if stats.due(cfg.status_every):
            log.info("%s: %s", ",".join(wiring.names), stats.status_line())


def _publish(cfg: RunConfig, wiring: Wiring, fed: Fed, masks: Masks) -> tuple[float, dict]:
    """Send both topics for one frame; returns capture->publish latency (ms) and timings."""
    frame, name = fed.frame, wiring.names[fed.index]
    start = time.time_ns()
    timings = {"capture": fed.capture_ms, **masks.timings_ms}
    common = {"seq": frame.seq, "stamp_ns": frame.stamp_ns,
              "frame_id": wiring.sources[fed.index].frame_id, "model": wiring.model}
    timings["total"] = (time.time_ns() - frame.stamp_ns) / 1e6
    wiring.publisher.publish(f"{name}/drivable", "drivable", masks.drivable,
                             classes=DRIVABLE_CLASSES, encoding=cfg.encoding,
                             latency_ms=timings, **common)
    timings["publish"] = (time.time_ns() - start) / 1e6
    timings["total"] = (time.time_ns() - frame.stamp_ns) / 1e6
    classes_encoding = "mono8" if cfg.encoding == "bits" else cfg.encoding
    wiring.publisher.publish(f"{name}/classes", "classes", masks.classes,
                             classes=wiring.pipeline.spec.classes, encoding=classes_encoding,
                             latency_ms=timings, **common)
    timings["publish"] = (time.time_ns() - start) / 1e6
    return (time.time_ns() - frame.stamp_ns) / 1e6, timings


def _demo_iou(fed: Fed, masks: Masks) -> float | None:
    """Drivable IoU against the generator's labels (demo frames only)."""
    if fed.frame.label is None:
        return None
    from rtseg.data.synthetic import drivable_mask

    return binary_iou(masks.drivable, drivable_mask(fed.frame.label))


def _model_name(cfg: RunConfig, batch: int) -> str:
    """The checkpoint, manifest or engine to load; with --engine, a cached engine."""
    if cfg.model is None and cfg.sources != ("demo",):
        log.warning("no --model given: using the bundled demo checkpoint, trained on "
                    "synthetic scenes only")
    model = cfg.model or "demo"
    if cfg.engine == "torch" or model.endswith((".json", ".onnx", ".engine", ".pt2")):
        return model
    from rtseg.export.cache import cached_engine

    return str(cached_engine(model, cfg.engine, cfg.device, cfg.engine_cache, batch=batch))


def _open_sources(cfg: RunConfig) -> list[Source]:
    """Open every --source now, so a bad one fails before anything runs (and the ones
    opened before it are closed)."""
    opened: list[Source] = []
    try:
        for spec in cfg.sources:
            opened.append(open_source(SourceSpec(
                spec=spec, pace=cfg.pace, loop=cfg.loop, fps=cfg.source_fps,
                demo_height=cfg.demo_size[0], demo_width=cfg.demo_size[1], seed=len(opened))))
    except RtsegError:
        for source in opened:
            source.close()
        raise
    return opened
