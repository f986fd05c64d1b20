"""`rtseg serve`'s Prometheus metrics: ``GET /metrics`` in Prometheus's text format (or
OpenMetrics, when the scraper's Accept header asks for it).

What an inference server's scrape gives (as Triton's or TorchServe's): requests by route,
method and status code, their latency, requests in progress, the time of each stage of
``POST /segment`` (decode, wait for the engine, pre, infer, post), whether the model is
open yet, and which model it is. One registry per app (no process-wide state, so two
servers in one process count apart); a plain ASGI middleware counts every request, 4xx
and 5xx included, with the route label taken from the known routes only ("other" for
any other path, so a scan of random URLs cannot grow the label set).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder

ROUTES = ("/segment", "/model", "/healthz", "/metrics")
# seconds: a 1 ms health check to a multi-second CPU inference of a large image
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
           5.0, 10.0)
STAGES = ("read_decode", "wait", "pre", "infer", "post")  # Server-Timing's names, in order


class ServeMetrics:
    """The metrics of one app. `ready()`: whether the model is open (read at each scrape);
    `model()`: its description once open (name, engine, device), else None."""

    def __init__(self, ready: Callable[[], bool], model: Callable[[], dict | None]):
        self.registry = CollectorRegistry()
        self._model = model
        self.requests = Counter("rtseg_serve_requests", "HTTP requests answered, by route, "
                                "method and status code", ["route", "method", "code"],
                                registry=self.registry)
        self.latency = Histogram("rtseg_serve_request_duration_seconds", "Time from a "
                                 "request's arrival to its last byte sent, by route",
                                 ["route"], buckets=BUCKETS, registry=self.registry)
        self.in_progress = Gauge("rtseg_serve_requests_in_progress", "Requests being "
                                 "answered now", registry=self.registry)
        self.stages = Histogram("rtseg_serve_segment_stage_seconds", "Time of each stage of "
                                "POST /segment: read_decode, wait (for the engine), pre, "
                                "infer, post", ["stage"], buckets=BUCKETS,
                                registry=self.registry)
        ready_gauge = Gauge("rtseg_serve_model_ready", "1 once the model is open and "
                            "/segment answers, 0 while it loads", registry=self.registry)
        ready_gauge.set_function(lambda: float(ready()))
        self.info: Info | None = None  # registered once the model is open
        self._info_lock = threading.Lock()  # scrapes run on a thread pool

    def observe_stages(self, timings_ms: dict) -> None:
        """One POST /segment's stage times (ms, Server-Timing's names) into the histogram."""
        for stage in STAGES:
            if stage in timings_ms:
                self.stages.labels(stage).observe(timings_ms[stage] / 1e3)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and its content type, in the format its Accept header asks
        for: OpenMetrics when it names it, else Prometheus text 0.0.4."""
        with self._info_lock:
            if self.info is None and (described := self._model()) is not None:
                self.info = Info("rtseg_serve_model", "The model served",
                                 registry=self.registry)
                self.info.info({k: str(v) for k, v in described.items()})
        encode, media = choose_encoder(accept)
        return encode(self.registry), media


class MetricsMiddleware:
    """ASGI middleware counting each HTTP request of `app` in `metrics` (see module doc)."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = 500  # what a request is counted as if the app fails before answering

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m, t0 = self.metrics, time.perf_counter()
        m.in_progress.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            m.in_progress.dec()
            m.latency.labels(route).observe(time.perf_counter() - t0)
            m.requests.labels(route, scope["method"], str(status)).inc()
