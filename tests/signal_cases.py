"""Cases for tests/test_signals.py, each run in a fresh interpreter (`python
tests/signal_cases.py CASE`): real signals to this process, inside stop_requests().

A fresh process, not the pytest one: after the rest of the suite, a SIGTERM raised in the
pytest process itself was once delivered onto a broken alternate signal stack left behind
by an earlier test's library and killed pytest (SIGSEGV inside raise(), no traceback).
Each case prints one line starting "ok" and exits 0, or fails with a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from rtseg import signals
from rtseg.signals import StopRequested, on_stop_signals, stop_requests


def swallow(sig: signal.Signals) -> None:
    """Send `sig` to this process and discard the StopRequested it raises, as C code that
    clears any error after calling back into Python does."""
    try:
        signal.raise_signal(sig)
        threading.Event().wait(5)  # the handler runs at once; this is never reached
        raise AssertionError("the signal raised nothing")
    except StopRequested:
        pass


def watcher_ends() -> None:
    for thread in threading.enumerate():
        if thread.name == "rtseg-stop-retry":
            thread.join(timeout=10)
            assert not thread.is_alive(), "the repeating thread outlived the command"


def swallowed_stop_comes_back() -> str:
    sent = time.monotonic()
    try:
        with stop_requests():
            swallow(signal.SIGTERM)
            while time.monotonic() - sent < 30:  # start-up carrying on
                sum(range(1000))
    except StopRequested as stop:
        seconds = time.monotonic() - sent
        assert stop.signame == "SIGTERM", stop.signame
        watcher_ends()
        return f"ok raised again after {seconds:.2f} s"
    raise AssertionError("the swallowed stop never came back")


def cleanup_is_not_interrupted() -> str:
    closed = threading.Event()
    try:
        with stop_requests():
            try:
                signal.raise_signal(signal.SIGTERM)
            finally:  # a slow close: several repeats' worth, and a second signal
                signal.raise_signal(signal.SIGINT)
                closed.wait(4 * signals.RETRY_S)
                closed.set()
    except StopRequested as stop:
        assert closed.is_set() and stop.signame == "SIGTERM", stop.signame
        watcher_ends()
        return "ok cleanup ran to its end"
    raise AssertionError("no stop")


def loop_gets_the_swallowed_stop() -> str:
    signals.RETRY_S = 60.0  # no repeat before the loop starts
    handed: list[int] = []
    with stop_requests():
        swallow(signal.SIGINT)
        with on_stop_signals(handed.append):
            assert handed == [signal.SIGINT], handed  # the loop stops before its first step
    watcher_ends()
    return "ok handed on entry"


def nothing_left_after_the_command() -> str:
    try:
        with stop_requests():
            signal.raise_signal(signal.SIGTERM)
    except StopRequested:
        pass
    watcher_ends()
    with stop_requests():  # the next command starts with nothing received
        assert not signals.stop_signal_received()
    return "ok"


def deferred_stop_waits_for_the_block() -> str:
    """A signal inside deferred() (an import of native code) lets the block finish, the
    watcher's repeats included, and comes out as a StopRequested when it ends."""
    finished = False
    try:
        with stop_requests():
            with signals.deferred():
                signal.raise_signal(signal.SIGTERM)
                threading.Event().wait(3 * signals.RETRY_S)  # repeats arrive meanwhile
                finished = True
            raise AssertionError("deferred() ended without raising the stop")
    except StopRequested as stop:
        assert finished and stop.signame == "SIGTERM", (finished, stop.signame)
        watcher_ends()
        return "ok raised when the block ended"
    raise AssertionError("no stop")


def node_stop_takes_no_lock() -> str:
    """The node's stop_on_signals: a signal landing while the main thread holds the stop
    Event's own lock (as inside `stop.wait`) must not wait for that lock. A handler that
    set the Event there hung the process for good; this one only appends, and a watcher
    thread sets the Event."""
    from rtseg.stream.node import stop_on_signals

    stop = threading.Event()
    with stop_requests(), stop_on_signals(stop) as signalled:
        with stop._cond:  # the Event's lock, held by this (the main) thread
            signal.raise_signal(signal.SIGTERM)  # its handler runs here, at once
            assert signalled == [signal.SIGTERM], signalled
        assert stop.wait(10), "the watcher sets the Event"
    return "ok"


CASES = {f.__name__: f for f in (swallowed_stop_comes_back, cleanup_is_not_interrupted,
                                  loop_gets_the_swallowed_stop, nothing_left_after_the_command,
                                  deferred_stop_waits_for_the_block, node_stop_takes_no_lock)}

if __name__ == "__main__":
    print(CASES[sys.argv[1]]())
