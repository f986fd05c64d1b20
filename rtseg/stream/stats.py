"""Running counters of a node: rates, drops, latency and per-stage percentiles, a status line."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

import numpy as np

STAGES = ("capture", "h2d", "pre", "infer", "post", "d2h", "publish")


class NodeStats:
    """Counts published frames; keeps the last latencies and stage times (ms) for percentiles.

    `captured()` and `dropped()` read the sources' and publisher's counters. `record` is
    called by the publishing thread, the status line by another: a lock keeps them apart.
    """

    def __init__(self, captured: Callable[[], int], dropped: Callable[[], int],
                 window: int = 2000):
        self._captured, self._dropped = captured, dropped
        self.published = 0
        self.per_name: dict[str, int] = defaultdict(int)
        self.last_seq: dict[str, int] = {}
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=window)
        self._stages: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self._ious: deque[float] = deque(maxlen=window)
        self._last_status = self.started
        self._last_counts = (0, 0)

    def restart(self) -> None:
        """Forget everything so far (the benchmark calls it when its warm-up ends)."""
        with self._lock:
            self.published = 0
            self.per_name.clear()
            self._latencies.clear()
            self._stages.clear()
            self._ious.clear()
            self.started = self._last_status = time.perf_counter()
            self._last_counts = (self._captured(), 0)

    def record(self, name: str, latency_ms: float, timings: dict | None = None,
               demo_iou: float | None = None, seq: int | None = None) -> None:
        """One frame (`seq`) of topic prefix `name` published, capture->publish `latency_ms`."""
        with self._lock:
            self.published += 1
            self.per_name[name] += 1
            if seq is not None:
                self.last_seq[name] = seq
            self._latencies.append(latency_ms)
            for stage, ms in (timings or {}).items():
                if stage in STAGES:
                    self._stages[stage].append(float(ms))
            if demo_iou is not None:
                self._ious.append(demo_iou)

    def progress(self, name: str) -> tuple[int, int]:
        """(frames published, seq of the last one or -1) of topic prefix `name`."""
        with self._lock:
            return self.per_name.get(name, 0), self.last_seq.get(name, -1)

    def due(self, every_s: float) -> bool:
        """True once every `every_s` seconds (then resets the interval)."""
        return every_s > 0 and time.perf_counter() - self._last_status >= every_s

    def status_line(self) -> str:
        """`in X fps | out Y fps | dropped N | latency p50 A ms p99 B ms` since the last one."""
        now = time.perf_counter()
        captured = self._captured()
        dt = max(now - self._last_status, 1e-9)
        fps_in = (captured - self._last_counts[0]) / dt
        fps_out = (self.published - self._last_counts[1]) / dt
        self._last_status, self._last_counts = now, (captured, self.published)
        p50, p99 = self.percentiles()
        line = (f"in {fps_in:5.1f} fps | out {fps_out:5.1f} fps | dropped {self.dropped} | "
                f"latency p50 {p50:6.1f} ms p99 {p99:6.1f} ms")
        if self._ious:
            line += f" | drivable IoU vs truth {np.mean(self._ious):.3f}"
        return line

    @property
    def dropped(self) -> int:
        """Frames captured but never published, plus messages ZeroMQ refused."""
        return int(self._dropped())

    def percentiles(self) -> tuple[float, float]:
        """(p50, p99) capture->publish latency in ms over the window; NaN when empty."""
        with self._lock:
            values = list(self._latencies)
        return _p50_p99(values)

    def stage_percentiles(self) -> dict[str, dict[str, float]]:
        """{stage: {"p50": ms, "p99": ms, "mean": ms}} for every stage recorded."""
        return stage_summary(self.samples())

    def samples(self) -> dict[str, list[float]]:
        """The raw window: {"latency": ms per frame, STAGE: ms per frame, ...}."""
        with self._lock:
            return {"latency": list(self._latencies),
                    **{k: list(v) for k, v in self._stages.items()}}

    def report(self) -> dict:
        """Final figures for NodeReport."""
        seconds = time.perf_counter() - self.started
        p50, p99 = self.percentiles()
        return {
            "published": self.published, "dropped": self.dropped, "seconds": seconds,
            "fps": self.published / seconds if seconds > 0 else 0.0,
            "latency_p50_ms": p50, "latency_p99_ms": p99,
            "demo_drivable_iou": float(np.mean(self._ious)) if self._ious else None,
            "per_name": dict(self.per_name), "stages_ms": self.stage_percentiles(),
        }


def summarise(values: list[float]) -> dict[str, float]:
    """{"p50", "p99", "mean"} of `values` (ms); NaN when empty."""
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan")}
    p50, p99 = np.percentile(np.asarray(values, dtype=float), [50, 99])
    return {"p50": float(p50), "p99": float(p99), "mean": float(np.mean(values))}


def stage_summary(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """`summarise` of each stage in `samples` that has values, in pipeline order."""
    return {stage: summarise(samples[stage]) for stage in STAGES if samples.get(stage)}


def _p50_p99(values: list[float]) -> tuple[float, float]:
    summary = summarise(values)
    return summary["p50"], summary["p99"]
