"""rtseg.signals in this process: a StopRequested that something swallows is raised again
until the command has it; the cleanup of a stop is never interrupted by its repeats.

Real signals (signal.raise_signal) to the pytest process, inside stop_requests(), whose
handlers are put back on leaving.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from rtseg import signals
from rtseg.signals import StopRequested, on_stop_signals, stop_requests


def swallow(sig: signal.Signals) -> None:
    """Send `sig` to this process and discard the StopRequested it raises, as C code that
    clears any error after calling back into Python does."""
    try:
        signal.raise_signal(sig)
        threading.Event().wait(5)  # the handler runs at once; this is never reached
        pytest.fail("the signal raised nothing")
    except StopRequested:
        pass


def retry_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rtseg-stop-retry"]


def assert_no_retry_left() -> None:
    for thread in retry_threads():
        thread.join(timeout=10)
    assert not retry_threads(), "the repeating thread outlived the command"


def test_a_swallowed_stop_is_raised_again_until_it_gets_out():
    sent = time.monotonic()
    with pytest.raises(StopRequested) as caught:
        with stop_requests():
            swallow(signal.SIGTERM)
            while time.monotonic() - sent < 30:  # start-up carrying on
                sum(range(1000))
    assert caught.value.signame == "SIGTERM"
    assert time.monotonic() - sent < 10 * signals.RETRY_S + 5
    assert_no_retry_left()


def test_the_cleanup_of_a_stop_is_not_interrupted_by_repeats_or_a_second_signal():
    closed = threading.Event()
    with pytest.raises(StopRequested) as caught:
        with stop_requests():
            try:
                signal.raise_signal(signal.SIGTERM)
            finally:  # a slow close: several repeats' worth, and a second signal
                signal.raise_signal(signal.SIGINT)
                closed.wait(4 * signals.RETRY_S)
                closed.set()
    assert closed.is_set() and caught.value.signame == "SIGTERM"
    assert_no_retry_left()


def test_an_orderly_loop_gets_the_stop_that_start_up_swallowed(monkeypatch):
    monkeypatch.setattr(signals, "RETRY_S", 60.0)  # no repeat before the loop starts
    handed: list[int] = []
    with stop_requests():
        swallow(signal.SIGINT)
        with on_stop_signals(handed.append):
            assert handed == [signal.SIGINT]  # the loop stops before its first step
        assert_no_retry_left()  # settled on entry


def test_a_stop_that_got_out_is_not_repeated_after_the_command():
    with pytest.raises(StopRequested):
        with stop_requests():
            signal.raise_signal(signal.SIGTERM)
    assert_no_retry_left()
    with stop_requests():  # the next command starts with nothing received
        assert not signals.stop_signal_received()
