"""A real demo node on a thread (bundled model, generated scenes, optional image topic),
for the consumer tests (view, record) and benchmarks/screenshot_viewer.py.

It binds ``tcp://127.0.0.1:*`` and tells the bound endpoint: no port is picked and
released. No fixed sleeps: callers wait on what they receive.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

NODE_START_S = 120  # model load + first frame on a busy 2-core machine


@contextmanager
def demo_node(image_topic: bool = True, **overrides) -> Iterator[str]:
    """Run `rtseg run --source demo [--image-topic]` in this process; yield its endpoint
    once the socket is bound, the model loaded and the source open; stop it on exit."""
    from rtseg.config import RunConfig

    settings = {"source": "demo", "model": "demo", "device": "cpu", "status_every": 0,
                "image_topic": image_topic, "heartbeat_s": 0.5, **overrides}
    cfg = RunConfig(bind="tcp://127.0.0.1:*", **settings)
    stop, ready, errors = threading.Event(), queue.Queue(), []

    def main() -> None:
        try:
            serve_node(cfg, stop, on_ready=ready.put)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)
            ready.put(None)

    thread = threading.Thread(target=main, name="demo-node", daemon=True)
    thread.start()
    try:
        endpoint = ready.get(timeout=NODE_START_S)
        if endpoint is None:
            raise errors[0]
        yield endpoint
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors


def serve_node(cfg, stop: threading.Event | None, on_ready, backend=None):
    """`run_node(cfg)` that calls `on_ready(endpoint)` once the socket is bound, the model
    loaded (or `backend` used) and the sources open, before the first frame is read; the
    NodeReport."""
    from rtseg.stream.node import LoopSettings, node_report, open_node, serve

    with open_node(cfg, backend) as wiring:
        on_ready(wiring.publisher.endpoint)
        stats = serve(wiring, LoopSettings.from_run(cfg), stop or threading.Event())
    return node_report(wiring, stats)
