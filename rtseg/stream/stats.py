"""Running counters of a node: rates, drops, latency percentiles, a status line."""

from __future__ import annotations

import time
from collections import deque

import numpy as np


class NodeStats:
    """Counts published frames and keeps the last latencies for percentiles (ms)."""

    def __init__(self, source, publisher, window: int = 2000):
        self.source = source
        self.publisher = publisher
        self.published = 0
        self.started = time.perf_counter()
        self._latencies: deque[float] = deque(maxlen=window)
        self._ious: deque[float] = deque(maxlen=window)
        self._last_status = self.started
        self._last_counts = (0, 0)

    def record(self, latency_ms: float, demo_iou: float | None = None) -> None:
        """One frame published with this capture->publish latency."""
        self.published += 1
        self._latencies.append(latency_ms)
        if demo_iou is not None:
            self._ious.append(demo_iou)

    def due(self, every_s: float) -> bool:
        """True once every `every_s` seconds (then resets the interval)."""
        return every_s > 0 and time.perf_counter() - self._last_status >= every_s

    def status_line(self) -> str:
        """`in X fps | out Y fps | dropped N | latency p50 A ms p99 B ms` since the last one."""
        now = time.perf_counter()
        captured = self.source.stats.get("captured", 0)
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
        return int(self.source.stats.get("dropped", 0)) + int(self.publisher.dropped)

    def percentiles(self) -> tuple[float, float]:
        """(p50, p99) capture->publish latency in ms over the window; NaN when empty."""
        if not self._latencies:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(np.fromiter(self._latencies, float), [50, 99])
        return float(p50), float(p99)

    def report(self) -> dict:
        """Final figures for NodeReport."""
        seconds = time.perf_counter() - self.started
        p50, p99 = self.percentiles()
        return {
            "published": self.published, "dropped": self.dropped, "seconds": seconds,
            "fps": self.published / seconds if seconds > 0 else 0.0,
            "latency_p50_ms": p50, "latency_p99_ms": p99,
            "demo_drivable_iou": float(np.mean(self._ious)) if self._ious else None,
        }
