"""`rtseg run --metrics-port`: the node's counters for Prometheus, ``GET /metrics``.

Read at scrape time from what the node keeps anyway (the heartbeat's per-source status,
NodeStats' counts and latency window), so a frame costs nothing more. Per source NAME:
frames published and dropped (counters), output fps over the last seconds, the last seq,
its state (ok / reconnecting / ended, one sample each, 1 for the current one); for the
node: capture->publish latency and each stage's time as p50 / p99 over the last frames
(gauges with a ``quantile`` label), whether the model is loaded, and which model it is.
The HTTP server is a small threading one on the socket bound at start (a busy port fails
before anything loads); other paths are a 404 naming ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import choose_encoder

from rtseg.httpbind import SocketHTTPServer
from rtseg.stream.heartbeat import Heartbeat
from rtseg.stream.stats import STAGES

log = logging.getLogger(__name__)
SOURCE_STATES = ("ok", "reconnecting", "ended")
QUANTILES = (("0.5", 50.0), ("0.99", 99.0))


class NodeCollector:
    """A Prometheus collector over a running node's heartbeat (see module doc). `model`
    (its name) and `endpoint` are set once known."""

    def __init__(self, heartbeat: Heartbeat, endpoint: str) -> None:
        self.heartbeat = heartbeat
        self.endpoint = endpoint
        self.model: str | None = None
        self.started = time.monotonic()

    def describe(self) -> list:
        return []  # families are built at each scrape; nothing to check at registration

    def collect(self):
        sources = self.heartbeat.snapshot()
        stats = self.heartbeat.stats
        published = CounterMetricFamily("rtseg_node_frames_published", "Frames published, "
                                        "per source", labels=["source"])
        dropped = CounterMetricFamily("rtseg_node_frames_dropped", "Frames captured and "
                                      "never published, per source", labels=["source"])
        fps = GaugeMetricFamily("rtseg_node_source_fps", "Output frames per second over "
                                "the last seconds, per source", labels=["source"])
        seq = GaugeMetricFamily("rtseg_node_last_seq", "Seq of the last frame published "
                                "(-1 before the first)", labels=["source"])
        state = GaugeMetricFamily("rtseg_node_source_state", "1 for the source's state now",
                                  labels=["source", "state"])
        for source in sources:
            count = stats.progress(source.name)[0] if stats is not None else 0
            published.add_metric([source.name], count)
            dropped.add_metric([source.name], source.dropped)
            fps.add_metric([source.name], source.fps)
            seq.add_metric([source.name], source.last_seq)
            for name in SOURCE_STATES:
                state.add_metric([source.name, name], float(source.state == name))
        yield from (published, dropped, fps, seq, state)
        yield from self._timing(stats.samples() if stats is not None else {})
        yield from self._node()

    def _timing(self, samples: dict[str, list[float]]):
        """Latency and stage-time quantiles (seconds) over NodeStats' window."""
        latency = GaugeMetricFamily("rtseg_node_latency_seconds", "Capture to publish "
                                    "time over the last frames", labels=["quantile"])
        stages = GaugeMetricFamily("rtseg_node_stage_seconds", "Time of each pipeline "
                                   "stage over the last frames", labels=["stage", "quantile"])
        for key, values in samples.items():
            if not values:
                continue
            cuts = np.percentile(np.asarray(values, dtype=float), [q for _, q in QUANTILES])
            for (label, _), ms in zip(QUANTILES, cuts):
                if key == "latency":
                    latency.add_metric([label], ms / 1e3)
                elif key in STAGES:
                    stages.add_metric([key, label], ms / 1e3)
        yield from (latency, stages)

    def _node(self):
        loaded = GaugeMetricFamily("rtseg_node_model_loaded", "1 once the model is loaded "
                                   "and frames flow, 0 while it loads")
        loaded.add_metric([], float(self.model is not None))
        uptime = GaugeMetricFamily("rtseg_node_uptime_seconds", "Seconds since the node "
                                   "started")
        uptime.add_metric([], time.monotonic() - self.started)
        yield from (loaded, uptime)
        if self.model is not None:
            info = InfoMetricFamily("rtseg_node", "The node's model and endpoint")
            info.add_metric([], {"model": self.model, "endpoint": self.endpoint})
            yield info


class MetricsServer:
    """``GET /metrics`` of `registry` on the listening socket `sock`, on a daemon thread,
    until `close()`."""

    def __init__(self, sock, registry: CollectorRegistry) -> None:
        self._server = _Server(sock, registry)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="rtseg-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Server(SocketHTTPServer):
    def __init__(self, sock, registry: CollectorRegistry) -> None:
        super().__init__(sock, _Handler)
        self.registry = registry


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # see rtseg.view: no delayed-ACK wait per response

    def do_GET(self) -> None:  # noqa: N802  (the http.server name)
        if self.path.split("?")[0] != "/metrics":
            return self._send(404, "text/plain; charset=utf-8",
                              f"no such page {self.path}: try /metrics\n".encode())
        encode, media = choose_encoder(self.headers.get("Accept", ""))
        self._send(200, media, encode(self.server.registry))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (the base's name)
        log.debug("%s %s", self.address_string(), format % args)
