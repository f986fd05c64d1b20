"""The node's `NAME/status` heartbeat (PROTOCOL.md, "Status messages") on its own thread.

It starts as soon as the socket is bound and the sources are open, so a consumer hears
from the node while the model still loads, and keeps beating while no frame arrives (a
lost camera shows as ``reconnecting``, a finished file as ``ended``). One message per
topic prefix NAME (`node` = NAME), each listing every source of the node. The last one
says ``stopping``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from rtseg.protocol import SourceStatus
from rtseg.stream.publisher import MaskPublisher
from rtseg.stream.sources import Source

log = logging.getLogger(__name__)
FPS_WINDOW_S = 3.0


class Heartbeat:
    """Publishes status every `period_s` until `close()`; `attach(feed, stats)` once the
    loop runs gives it the frame counters (before that: fps 0, last_seq -1)."""

    def __init__(self, publisher: MaskPublisher, names: Sequence[str],
                 sources: Sequence[Source], period_s: float = 1.0) -> None:
        self._publisher = publisher
        self._names = tuple(names)
        self._sources = tuple(sources)
        self._period_s = period_s
        self._feed = self._stats = None
        self._history: deque[tuple[float, tuple[int, ...]]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtseg-heartbeat", daemon=True)
        self._thread.start()

    def attach(self, feed, stats) -> None:
        """Report from these (a FrameFeed and NodeStats) from now on."""
        self._feed, self._stats = feed, stats

    @property
    def stats(self):
        """The NodeStats attached, None before the loop runs."""
        return self._stats

    def snapshot(self) -> list[SourceStatus]:
        """Every source's state, fps over the last few seconds, drops and last seq."""
        feed, stats = self._feed, self._stats
        progress = [stats.progress(n) if stats else (0, -1) for n in self._names]
        fps = self._rates(tuple(count for count, _ in progress))
        out = []
        for i, (name, source) in enumerate(zip(self._names, self._sources)):
            state = feed.state(i) if feed else source.state
            dropped = feed.dropped(i) if feed else int(source.stats.get("dropped", 0))
            out.append(SourceStatus(name=name, state=state, fps=fps[i], dropped=dropped,
                                    last_seq=progress[i][1]))
        return out

    def _rates(self, counts: tuple[int, ...]) -> list[float]:
        now = time.monotonic()
        self._history.append((now, counts))
        while now - self._history[0][0] > FPS_WINDOW_S:
            self._history.popleft()
        then, old = self._history[0]
        if now - then <= 0 or any(c < o for c, o in zip(counts, old)):  # counters restarted
            return [0.0] * len(counts)
        return [(c - o) / (now - then) for c, o in zip(counts, old)]

    def beat(self, state: str = "running") -> None:
        """Send one status message per topic prefix now."""
        sources = self.snapshot()
        for name in self._names:
            self._publisher.publish_status(name, state, sources)

    def _run(self) -> None:
        while True:
            try:
                self.beat()
            except Exception:  # a heartbeat must never take the node down
                log.exception("sending the status heartbeat failed")
            if self._stop.wait(self._period_s):
                return

    def close(self) -> None:
        """Stop the thread, then send the last status (``stopping``)."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        try:
            self.beat("stopping")
        except Exception:
            log.exception("sending the last status failed")

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
