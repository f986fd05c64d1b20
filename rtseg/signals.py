"""SIGINT / SIGTERM for long-running commands: exit 0, at any moment, with one summary line.

Two layers:

- `stop_requests()` is entered first thing by a command (before torch is imported). A
  signal then raises `StopRequested` in the main thread wherever it is: start-up (imports,
  model loading, opening cameras) is abandoned, and the `with` blocks on the way out close
  what was opened (sockets, sources). The command catches it and prints its summary.
- `on_stop_signals(handler)` is entered around a command's main loop, where stopping must
  be orderly (finish the batch in flight, write last.pt): there a signal only calls
  `handler()`. On leaving, the raising handlers are back for the shutdown.

A raised StopRequested can be swallowed before it reaches the command: Python runs a
signal handler at whatever bytecode the main thread is at, and C code that calls back into
Python (a library probing an attribute, a finaliser) may clear any error it meets. A
start-up would then carry on as if no signal had come (a node stopped 1.5 s into its
start-up once ran on for a minute). So a raised stop is raised again every RETRY_S by a
thread that the outermost `stop_requests()` starts, until the command has settled it: the
outermost `stop_requests()` was left (the stop reached the command), or `on_stop_signals()`
was entered (its handler is then called at once with the swallowed signal). Code that is
already unwinding because of a StopRequested (a `finally`, an `__exit__`) is never
interrupted by a repeat or a second signal, so what it closes gets closed. The handlers
themselves only set attributes: no lock, no thread start (a handler may run while the main
thread holds `threading`'s own locks).
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RETRY_S = 0.2  # how often a swallowed StopRequested is raised again


@dataclass
class _StopState:
    """The process's stop signals; reset when a command's outermost stop_requests() starts.
    The signal handlers only set attributes (no locks, no threads: a handler runs wherever
    the main thread is, possibly inside `threading`'s own locked code)."""

    received: list[int] = field(default_factory=list)  # every stop signal, in order
    depth: int = 0  # stop_requests() blocks entered
    raised: int | None = None  # the signal of a raised stop that has not got out yet
    retry_pending: bool = False  # the handler's next call is a repeat, not a new signal
    defer: int = 0  # deferred() blocks entered: a raised stop waits for the last to end
    lock: threading.Lock = field(default_factory=threading.Lock)


_stop = _StopState()


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


def wait_for_stop(stop: threading.Event, detail: Callable[[], str]) -> None:
    """Block until `stop` is set. A stop signal meanwhile (StopRequested) leaves with its
    detail set to `detail()` (what the serving command did, for its summary line)."""
    try:
        while not stop.wait(0.5):
            pass
    except StopRequested as stopped:
        stopped.detail = detail()
        raise


def _raise(signum: int, _frame) -> None:
    repeat, _stop.retry_pending = _stop.retry_pending, False
    if repeat and _stop.raised is None:
        return  # settled meanwhile
    if not repeat:
        _stop.received.append(signum)
    if _stop_in_flight():
        return  # already on its way out: let the cleanup run
    if _stop.raised is None:
        _stop.raised = signum  # the watcher repeats it until it gets out
    if _stop.defer:
        return  # deferred() raises it on leaving
    raise StopRequested(signum)


def _stop_in_flight() -> bool:
    """True while the main thread is handling a StopRequested (an except, a finally, an
    __exit__ on its way out)."""
    return _stop_behind(sys.exc_info()[1]) is not None


def _stop_behind(exc: BaseException | None) -> StopRequested | None:
    """`exc` if it is a StopRequested, else the first one in its causes and contexts."""
    visited = set()
    while exc is not None and id(exc) not in visited:
        if isinstance(exc, StopRequested):
            return exc
        visited.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _start_watcher() -> threading.Event:
    """A thread that raises a raised-but-unsettled stop again every RETRY_S, until the
    returned event is set."""
    done = threading.Event()

    def repeat() -> None:
        while not done.wait(RETRY_S):
            with _stop.lock:
                if _stop.raised is not None and not done.is_set():
                    _stop.retry_pending = True
                    _thread.interrupt_main(_stop.raised)

    threading.Thread(target=repeat, name="rtseg-stop-retry", daemon=True).start()
    return done


def _settle() -> bool:
    """Stop repeating the raised stop; True if one was being repeated."""
    with _stop.lock:
        raised, _stop.raised = _stop.raised, None
    return raised is not None


def stopped_by(exc: BaseException) -> StopRequested | None:
    """The StopRequested behind `exc`, if a stop signal caused it: itself, or found in its
    chain of causes (Python 3.11 wraps an exception raised while a class body is being
    set up, e.g. in the middle of `import torch`, in a RuntimeError), or a new one when a
    signal arrived and start-up failed because of it."""
    stop = _stop_behind(exc)
    if stop is not None:
        return stop
    if _stop.received and not isinstance(exc, (SystemExit, KeyboardInterrupt)):
        return StopRequested(_stop.received[0])
    return None


def stop_signal_received() -> bool:
    """True once a SIGINT/SIGTERM reached one of these handlers."""
    return bool(_stop.received)


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
    """Make SIGINT/SIGTERM raise `StopRequested` in the main thread while inside (and
    again, should something swallow it, until the outermost block is left)."""
    outermost = _stop.depth == 0 and threading.current_thread() is threading.main_thread()
    if outermost:  # a new command
        _stop.received.clear()
        _stop.raised, _stop.retry_pending = None, False
        watcher_done = _start_watcher()
    _stop.depth += 1
    try:
        with _handlers(_raise):
            try:
                yield
            finally:
                if outermost:
                    _settle()  # before the old handlers are back
                    watcher_done.set()
    finally:
        _stop.depth -= 1


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop signal back while inside (recorded, not raised) and raise it on leaving.

    For native code that calls back into Python, above all `import torch`: a StopRequested
    raised there by a signal handler passes through pybind11, which turns it into a C++
    exception that nothing catches, and the process aborts (std::terminate) instead of
    stopping. Held back, the stop comes out once the import is done (about a second)."""
    _stop.defer += 1
    try:
        yield
    finally:
        _stop.defer -= 1
    if _stop.defer == 0 and _stop.raised is not None and not _stop_in_flight():
        raise StopRequested(_stop.raised)


def import_deferred(*modules: str) -> None:
    """Import `modules` (e.g. "torch") with stop signals held back (see `deferred`)."""
    import importlib

    with deferred():
        for name in modules:
            importlib.import_module(name)


@contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Call `handler(signum)` on SIGINT or SIGTERM while inside; restore the old handlers
    after.

    Installs handlers explicitly, so a process that inherited SIGINT ignored (a background
    job of a shell) still stops. Only the main thread can; elsewhere this does nothing.
    A stop signal whose StopRequested was swallowed before this block (see the module's
    docstring) is handed to `handler` on entry.
    """
    def on_signal(signum: int, _frame) -> None:
        if _stop.retry_pending:  # a repeat of a stop already handed over
            _stop.retry_pending = False
            return
        _stop.received.append(signum)
        handler(signum)

    with _handlers(on_signal):
        if threading.current_thread() is threading.main_thread() and _settle():
            handler(_stop.received[0])
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
