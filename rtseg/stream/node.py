"""The streaming node: sources -> pipeline -> two topics per source on one PUB socket.

Three stages run on their own threads: the sources' readers (capture, decode), the
submitting thread (batch the newest frame of each source, preprocess, infer; on CUDA only
enqueue), and the publishing thread (masks, both topics, counters). The last two overlap
unless the host pipeline runs with `--overlap off` (one slot): then each batch is
published before the next is submitted. Topics are
`NAME/drivable` and `NAME/classes` (PROTOCOL.md), one NAME per source, each with the seq
of its own source. A status line goes to the log every few seconds; SIGINT/SIGTERM stop
the loop, and threads and sockets are closed.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from rtseg.backends import Backend, load_backend
from rtseg.config import RunConfig, parse_mask_size
from rtseg.errors import RtsegError
from rtseg.signals import on_stop_signals
from rtseg.stream.contract import FramePipeline
from rtseg.stream.feed import FrameFeed, frame_transform
from rtseg.stream.heartbeat import Heartbeat
from rtseg.stream.live import CaptureSettings, StreamOptions
from rtseg.stream.pipeline import Pipeline
from rtseg.stream.publisher import MaskPublisher
from rtseg.stream.publishing import publish_loop, queue_messages
from rtseg.stream.sources import Source, SourceSpec, open_source, parse_source
from rtseg.stream.stats import NodeStats

log = logging.getLogger("rtseg.node")

# Decoded frames alive at once: one decoding, one waiting in the feed, and at most one
# per CUDA pipeline slot (3); a ring of 8 is never overwritten while still in use.
PINNED_RING = 8
SIGNAL_POLL_S = 0.05  # how soon a stop signal reaches the node's threads (stop_on_signals)


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
    stopped_by: str | None = None  # SIGINT / SIGTERM when a signal ended the run
    per_name: dict = field(default_factory=dict)
    stages_ms: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the end of a run."""
        line = (f"{self.name}: published {self.published} frames in {self.seconds:.1f} s "
                f"({self.fps:.1f} fps), dropped {self.dropped}, latency p50 "
                f"{self.latency_p50_ms:.1f} ms p99 {self.latency_p99_ms:.1f} ms")
        if self.demo_drivable_iou is not None:
            line += f", drivable IoU vs truth {self.demo_drivable_iou:.3f}"
        if self.stopped_by:
            line += f"; stopped by {self.stopped_by}"
        return line


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs, from `rtseg run`'s flags: when it stops (`max_frames` over all
    sources), the output cap (`fps`), the mask `encoding`, the status-line period (s), and
    the optional image topic (`image_fps` per source, JPEG `image_width`; None: off)."""

    max_frames: int | None = None
    fps: float | None = None
    encoding: str = "mono8"
    status_every: float = 5.0
    image_fps: float | None = None
    image_width: int = 640
    rotations: tuple[int, ...] = ()  # per source, degrees clockwise; empty: none turned
    flips: tuple[str, ...] = ()  # per source, after turning: none, horizontal, vertical
    crops: tuple = ()  # per source, then: (x, y, w, h) kept, or None for all
    drivable: tuple[str, ...] = ()  # --drivable (the demo scores its labels alike)

    @classmethod
    def from_run(cls, cfg: RunConfig) -> LoopSettings:
        return cls(max_frames=cfg.max_frames, fps=cfg.fps, encoding=cfg.encoding,
                   status_every=cfg.status_every,
                   image_fps=cfg.image_fps if cfg.image_topic else None,
                   image_width=cfg.image_width, rotations=cfg.rotations, flips=cfg.flips,
                   crops=cfg.crops, drivable=cfg.drivable)

    def transforms(self, sources: int) -> list:
        """Per source, the function turning, mirroring and cropping its frames (None: as
        they come)."""
        return [frame_transform(r, f, c) for r, f, c in zip(
            self.rotations or (0,) * sources, self.flips or ("none",) * sources,
            self.crops or (None,) * sources)]


@dataclass(frozen=True)
class Wiring:
    """What the loop runs with: named sources, a pipeline, the socket and its heartbeat."""

    names: tuple[str, ...]
    sources: tuple[Source, ...]
    pipeline: FramePipeline  # Pipeline or CudaPipeline
    model: str
    publisher: MaskPublisher
    heartbeat: Heartbeat


def run_node(cfg: RunConfig, stop: threading.Event | None = None) -> NodeReport:
    """Run the node `cfg` describes until every source ends, `max_frames` are published, or
    `stop` is set / a signal: a SIGINT/SIGTERM while the loop runs stops it in order, and
    the report names the signal."""
    stop = stop or threading.Event()
    with open_node(cfg) as wiring, stop_on_signals(stop) as signalled:
        stats = serve(wiring, LoopSettings.from_run(cfg), stop)
    return node_report(wiring, stats, signalled)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """Inside, a SIGINT/SIGTERM is added to the yielded list and sets `stop` (an orderly
    end) within SIGNAL_POLL_S (rtseg.signals.on_stop_signals: only on the main thread).

    The handler only appends: setting the Event there would take its lock, which the main
    thread may hold when the signal lands (inside `stop.wait`), and hang the node. A
    watcher thread sets it instead."""
    signalled: list[int] = []
    left = threading.Event()  # set by this function only, never from the handler

    def watch() -> None:
        while not left.wait(SIGNAL_POLL_S):
            if signalled:
                stop.set()
                return

    watcher = threading.Thread(target=watch, name="rtseg-signals", daemon=True)
    watcher.start()
    try:
        with on_stop_signals(signalled.append):
            yield signalled
    finally:
        left.set()
        watcher.join()
        if signalled:
            stop.set()


def node_report(wiring: Wiring, stats: NodeStats, signalled: Sequence[int] = ()) -> NodeReport:
    """The report of a finished run from its counters; `signalled`: the stop signals seen."""
    stopped_by = signal.Signals(signalled[0]).name if signalled else None
    return NodeReport(name=",".join(wiring.names), endpoint=wiring.publisher.endpoint,
                      stopped_by=stopped_by, **stats.report())


@contextmanager
def open_node(cfg: RunConfig, backend: Backend | None = None) -> Iterator[Wiring]:
    """Bind the socket, open the sources, start the heartbeat, load the model (in that
    order, so a busy port or a missing camera fails before the model loads, and status
    flows while it loads); everything opened here is closed on the way out.
    `backend` given: used instead of cfg.model, and left open for its owner."""
    with ExitStack() as stack:
        publisher = stack.enter_context(MaskPublisher(
            cfg.bind, hwm=queue_messages(cfg.hwm, len(cfg.sources), cfg.image_topic),
            allow_remote=cfg.allow_remote, curve_secret=cfg.curve_secret,
            curve_clients=cfg.curve_clients, bind=False))
        publisher.bind()  # on the stack first: a stop at any moment closes it
        metrics_sock = _metrics_socket(stack, cfg)
        names, sources, heartbeat = _start_sources(stack, publisher, _open_sources(cfg),
                                                   cfg.names, cfg.heartbeat_s)
        collector = None if metrics_sock is None else _serve_metrics(
            stack, metrics_sock, heartbeat, publisher.endpoint)
        if backend is None:
            backend = stack.enter_context(load_backend(_model_name(cfg, len(sources)),
                                                       cfg.device, drivable=cfg.drivable))
        if collector is not None:
            collector.model = backend.spec.name
        yield _wiring(names, sources, backend, publisher, heartbeat, cfg.cuda_graphs,
                      cfg.overlap, cfg.mask_size)


def _metrics_socket(stack: ExitStack, cfg: RunConfig):
    """--metrics-port's listening socket, bound now so a busy port fails before the
    sources open and the model loads; None without the flag."""
    if cfg.metrics_port is None:
        return None
    from rtseg.httpbind import listen_socket

    sock = listen_socket(cfg.metrics_bind, cfg.metrics_port, allow_remote=cfg.allow_remote,
                         flags=("--metrics-bind", "--metrics-port"))
    stack.callback(sock.close)
    return sock


def _serve_metrics(stack: ExitStack, sock, heartbeat: Heartbeat, endpoint: str):
    """GET /metrics on `sock` from now until the node closes (rtseg.stream.metrics);
    the collector, whose `model` is set once loaded."""
    from prometheus_client import CollectorRegistry

    from rtseg.httpbind import socket_url
    from rtseg.stream.metrics import MetricsServer, NodeCollector

    collector = NodeCollector(heartbeat, endpoint)
    registry = CollectorRegistry()
    registry.register(collector)
    stack.callback(MetricsServer(sock, registry).close)
    log.info("metrics at %s/metrics (Prometheus)", socket_url(sock))
    return collector


@contextmanager
def wire(sources: Sequence[Source], backend: Backend, publisher: MaskPublisher,
         cuda_graphs: bool = False, heartbeat_s: float = 1.0,
         overlap: str = "on", mask_size: str = "frame") -> Iterator[Wiring]:
    """A node's wiring from parts opened elsewhere (the benchmark's in-memory frames and
    engine): topics named after the sources; the sources and the heartbeat started here
    are closed on the way out, the backend and publisher are left to their owners."""
    with ExitStack() as stack:
        names, opened, heartbeat = _start_sources(stack, publisher, sources, None,
                                                  heartbeat_s)
        yield _wiring(names, opened, backend, publisher, heartbeat, cuda_graphs, overlap,
                      mask_size)


def _start_sources(stack: ExitStack, publisher: MaskPublisher, sources: Sequence[Source],
                   names: tuple[str, ...] | None, heartbeat_s: float
                   ) -> tuple[tuple[str, ...], tuple[Source, ...], Heartbeat]:
    """Enter the sources on `stack`, name their topics, start their heartbeat."""
    opened = tuple(stack.enter_context(s) for s in sources)
    names = topic_names(names, opened)
    return names, opened, stack.enter_context(Heartbeat(publisher, names, opened, heartbeat_s))


def _wiring(names: tuple[str, ...], sources: tuple[Source, ...], backend: Backend,
            publisher: MaskPublisher, heartbeat: Heartbeat, cuda_graphs: bool,
            overlap: str, mask_size: str) -> Wiring:
    pipeline = make_pipeline(backend, sources, cuda_graphs, overlap, mask_size)
    wiring = Wiring(names, sources, pipeline, backend.spec.name, publisher, heartbeat)
    for name, source in zip(names, sources):
        log.info("%s: %s on %s -> %s (topics %s/drivable, %s/classes, %s/status)", name,
                 backend.spec.name, source.frame_id, publisher.endpoint, name, name, name)
    return wiring


def make_pipeline(backend: Backend, sources: Sequence[Source] = (),
                  cuda_graphs: bool = False, overlap: str = "on",
                  mask_size: str = "frame", upsample: str = "classes") -> FramePipeline:
    """CudaPipeline for a CUDA backend (pinned buffers, streams, GPU pre/post, CUDA graphs
    when `cuda_graphs`; video files then decode straight into pinned memory; logits
    upsampled on the GPU); otherwise the host Pipeline with the CPU's cheap upsampling of
    class maps (`upsample` "classes"; "logits": rtseg predict's), publishing a batch while
    the next one infers unless `overlap` is "off" (then one batch at a time), its masks at
    `mask_size` (rtseg.config.parse_mask_size: frame, input or HxW)."""
    size = parse_mask_size(mask_size)
    if backend.device.type == "cuda":
        from rtseg.stream.cuda_pipeline import CudaPipeline, pinned_array

        if size != "frame":
            raise RtsegError(f"--mask-size {mask_size} is for CPU engines; on CUDA the masks "
                             "come at each frame's size (drop --mask-size)")
        for source in sources:
            source.decode_into(pinned_array, count=PINNED_RING)
        return CudaPipeline(backend, graphs=cuda_graphs)
    fixed = None if size == "frame" else backend.spec.input_size if size == "input" else size
    return Pipeline(backend, upsample=upsample, overlap=overlap != "off", mask_size=fixed)


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


def serve(wiring: Wiring, settings: LoopSettings, stop: threading.Event,
          on_stats: Callable[[NodeStats], None] | None = None) -> NodeStats:
    """Submit batches on this thread and publish them on another, until every source
    ended, `settings.max_frames` were published or `stop` is set; the final counters.
    `on_stats(stats)` gets the live counters before the first frame (the benchmark restarts
    them after its warm-up)."""
    feed = FrameFeed(wiring.sources,
                     transforms=settings.transforms(len(wiring.sources)))
    stats = NodeStats(feed.captured, lambda: sum(map(feed.dropped, range(len(wiring.sources))))
                      + wiring.publisher.dropped)
    wiring.heartbeat.attach(feed, stats)
    if on_stats is not None:
        on_stats(stats)
    depth = max(1, wiring.pipeline.slots - 1)
    jobs: queue.Queue = queue.Queue(maxsize=depth)
    publishing = threading.Thread(target=publish_loop,
                                  args=(settings, wiring, jobs, stats, stop),
                                  name="rtseg-publish", daemon=True)
    publishing.start()
    try:
        _submit_loop(settings, wiring, feed, jobs, stop)
    finally:
        jobs.put(None)
        publishing.join()
        feed.close()
    return stats


def _submit_loop(cfg: LoopSettings, wiring: Wiring, feed: FrameFeed, jobs: queue.Queue,
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
        if wiring.pipeline.slots == 1:  # no overlap: wait until it is published
            jobs.join()
        submitted += len(batch)
        if cfg.max_frames is not None and submitted >= cfg.max_frames:
            break
        if cfg.fps:
            next_due = max(next_due + 1.0 / cfg.fps, time.perf_counter())
            stop.wait(max(0.0, next_due - time.perf_counter()))


def _model_name(cfg: RunConfig, batch: int) -> str:
    """The checkpoint, manifest or engine to load (rtseg.export.cache.resolve_model)."""
    if cfg.model is None and cfg.sources != ("demo",):
        log.warning("no --model given: using the bundled demo checkpoint, trained on "
                    "synthetic scenes only")
    from rtseg.export.cache import resolve_model

    return resolve_model(cfg.model, cfg.engine, cfg.device, cfg.engine_cache, batch=batch,
                         calib=cfg.calib, precision=cfg.precision)


def _open_sources(cfg: RunConfig) -> list[Source]:
    """Open every --source now, so a bad one fails before anything runs (and the ones
    opened before it are closed)."""
    kinds = {parse_source(spec)[0] for spec in cfg.sources}
    capture = None
    if cfg.capture_size or cfg.capture_fps or cfg.capture_fourcc:
        if "camera" not in kinds:
            raise RtsegError("--capture-size / --capture-fps / --capture-fourcc set what a "
                             "camera sends (--source camera0); no --source here is a camera")
        capture = CaptureSettings(cfg.capture_size, cfg.capture_fps, cfg.capture_fourcc)
    options = None
    if cfg.stream_options:
        if "url" not in kinds:
            raise RtsegError("--stream-option sets FFmpeg options of stream URLs (rtsp://, "
                             "http://); no --source here is one")
        options = StreamOptions.parse(cfg.stream_options)
    opened: list[Source] = []
    try:
        for spec in cfg.sources:
            opened.append(open_source(SourceSpec(
                spec=spec, pace=cfg.pace, loop=cfg.loop, fps=cfg.source_fps,
                recorded_stamps=cfg.stamps == "recorded", capture=capture, options=options,
                demo_height=cfg.demo_size[0], demo_width=cfg.demo_size[1], seed=len(opened))))
    except RtsegError:
        for source in opened:
            source.close()
        raise
    return opened
