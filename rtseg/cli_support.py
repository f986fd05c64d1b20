"""What the command modules share: the stop-signal wrapper of long-running commands and
the group that turns RtsegError into one line and exit status 1. No commands here."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import click

from rtseg.errors import RtsegError


def stoppable(command: str, fast: bool = True, where: str = "", torch: bool = False,
              shared_cores: Callable[[dict], bool] | None = None):
    """For a long-running command: SIGINT/SIGTERM at any moment (start-up included) end it
    with exit status 0 and one summary line on stderr (rtseg.signals). `fast`: once
    stopped by a signal, with everything closed, skip the interpreter's slow teardown.
    `where`: what the summary says when the signal came before the command's own loop.
    `torch`: import torch first with stop signals held back (rtseg.signals.deferred).
    `shared_cores(kwargs)`: whether, with these arguments, its engine shares the cores
    with threads that keep working whatever it does (a live source's capture); then
    torch's idle threads sleep instead of spinning (rtseg.device.yield_idle_cpu_threads)."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if shared_cores is not None and shared_cores(kwargs):
                from rtseg.device import yield_idle_cpu_threads

                yield_idle_cpu_threads()
            from rtseg.signals import (
                fast_exit,
                import_deferred,
                stop_requests,
                stop_signal_received,
                stopped_by,
            )

            try:
                with stop_requests():
                    if torch:
                        import_deferred("torch")
                    result = fn(*args, **kwargs)
            except BaseException as exc:
                stop = stopped_by(exc)
                if stop is None:
                    raise
                click.echo(stop.summary(command, where), err=True)
                fast_exit(0) if fast else sys.exit(0)
            if fast and stop_signal_received():
                fast_exit(0)
            return result
        return inner
    return wrap


def live_sources(kwargs: dict) -> bool:
    """`shared_cores` of run and bench: whether any of their --source is live."""
    from rtseg.stream.sources import is_live

    return any(is_live(source) for source in kwargs.get("source") or ())


class Group(click.Group):
    """Turns RtsegError into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtsegError as exc:
            click.echo(f"rtseg: error: {exc}", err=True)
            sys.exit(1)
