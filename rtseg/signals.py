"""SIGINT / SIGTERM for long-running commands: exit 0, at any moment, with one summary line.

Two layers:

- `stop_requests()` is entered first thing by a command (before torch is imported). A
  signal then raises `StopRequested` in the main thread wherever it is: start-up (imports,
  model loading, opening cameras) is abandoned, and the `with` blocks on the way out close
  what was opened (sockets, sources). The command catches it and prints its summary.
- `on_stop_signals(handler)` is entered around a command's main loop, where stopping must
  be orderly (finish the batch in flight, write last.pt): there a signal only calls
  `handler()`. On leaving, the raising handlers are back for the shutdown.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # every stop signal this process got, in order


class StopRequested(BaseException):  # noqa: N818  (like KeyboardInterrupt)
    """A SIGINT/SIGTERM ended the command; `detail` says where (e.g. the training step).

    A BaseException, like KeyboardInterrupt, so that `except Exception` does not swallow it.
    """

    def __init__(self, signum: int, detail: str = "") -> None:
        super().__init__(signum)
        self.signame = signal.Signals(signum).name
        self.detail = detail

    def summary(self, command: str, where: str = "") -> str:
        """One line: ``rtseg COMMAND: stopped by SIGTERM [detail, else where]``."""
        detail = self.detail or where
        return f"rtseg {command}: stopped by {self.signame}" + (f" {detail}" if detail else "")


def _raise(signum: int, _frame) -> None:
    _received.append(signum)
    raise StopRequested(signum)


def stopped_by(exc: BaseException) -> StopRequested | None:
    """The StopRequested behind `exc`, if a stop signal caused it: itself, or found in its
    chain of causes (Python 3.11 wraps an exception raised while a class body is being
    set up, e.g. in the middle of `import torch`, in a RuntimeError), or a new one when a
    signal arrived and start-up failed because of it."""
    seen, visited = exc, set()
    while seen is not None and id(seen) not in visited:
        if isinstance(seen, StopRequested):
            return seen
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    if _received and not isinstance(exc, (SystemExit, KeyboardInterrupt)):
        return StopRequested(_received[0])
    return None


def stop_signal_received() -> bool:
    """True once a SIGINT/SIGTERM reached one of these handlers."""
    return bool(_received)


def fast_exit(code: int) -> None:
    """End the process now: flush what was written, then skip the interpreter's teardown
    (finalising torch, OpenCV and their thread pools takes 0.6-1.5 s), so that a stopped
    command exits promptly. Only for when every resource is already closed."""
    import logging
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


@contextmanager
def stop_requests() -> Iterator[None]:
    """Make SIGINT/SIGTERM raise `StopRequested` in the main thread while inside."""
    with _handlers(_raise):
        yield


@contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Call `handler(signum)` on SIGINT or SIGTERM while inside; restore the old handlers
    after.

    Installs handlers explicitly, so a process that inherited SIGINT ignored (a background
    job of a shell) still stops. Only the main thread can; elsewhere this does nothing.
    """
    def on_signal(signum: int, _frame) -> None:
        _received.append(signum)
        handler(signum)

    with _handlers(on_signal):
        yield


@contextmanager
def _handlers(handler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
