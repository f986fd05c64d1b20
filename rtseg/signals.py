"""SIGINT / SIGTERM handling shared by long-running commands (node, training)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager


@contextmanager
def on_stop_signals(handler: Callable[[], None]):
    """Call `handler()` on SIGINT or SIGTERM while inside; restore the old handlers after.

    Installs handlers explicitly, so a process that inherited SIGINT ignored (a background
    job of a shell) still stops. Only the main thread can; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: handler())
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
