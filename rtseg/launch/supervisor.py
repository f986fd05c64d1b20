"""Start, supervise and stop the processes of a launch file, like ``ros2 launch``.

Processes start in file order; one with ``ready`` holds back the next until a message
arrives on its topic. A process that exits is reported with its status and, with
``respawn``, started again after ``respawn_delay`` until ``max_retries`` restarts are used
up. The launch ends when every process has ended, when one ends for good with a non-zero
status (or never gets ready), when a ``required`` one ends, or on SIGINT/SIGTERM; then
every child still running gets SIGTERM, and SIGKILL after ``grace_period`` seconds (a
process's own, else the launch's; at once on a second signal).

Each child runs in a session of its own, so a terminal's Ctrl-C reaches only the launcher,
which stops the children itself; signals go to each child's whole process group. Under
systemd (``Type=notify``) the launcher reports READY, STATUS, STOPPING and watchdog pings
(rtseg.launch.sdnotify).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rtseg.errors import RtsegError
from rtseg.launch.console import Console
from rtseg.launch.logs import LaunchLog
from rtseg.launch.sdnotify import NOTIFY_ENV, Notifier
from rtseg.launch.spec import LaunchSpec, ProcessSpec, is_http
from rtseg.signals import on_stop_signals

POLL_S = 0.05  # how often exits and restart times are checked
_READER_JOIN_S = 0.5  # how long an exit report waits for the last output lines


def run_launch(spec: LaunchSpec, console: Console | None = None,
               log_dir: str | None = None) -> str:
    """Run the launch `spec` until it ends (see the module docstring); return the summary
    line. SIGINT/SIGTERM stop it in order (a normal end). `log_dir`: also write every line
    to log files in a new folder there (rtseg.launch.logs).

    Raises:
        RtsegError: a process ended for good with a non-zero status, could not start, or
            sent nothing on its ``ready`` topic in time; the message names it. Also a
            `log_dir` that cannot be written, before anything starts.
    """
    console = console or Console()
    if log_dir is not None:
        console.log = LaunchLog(log_dir, tuple(proc.name for proc in spec.processes))
        console.say(f"logging to {console.log.folder}")
    for proc in spec.processes:
        if proc.output == "log" and log_dir is None:
            console.say(f'{proc.name}: output = "log" and no --log-dir: its lines are not kept')
    supervisor = Supervisor(spec, console)
    last = "rtseg launch: ended by an unexpected error"
    try:
        with on_stop_signals(supervisor.request_stop):
            supervisor.run()
        last = supervisor.summary()
    except RtsegError as exc:
        last = f"rtseg: error: {exc}"
        raise
    finally:
        console.close_log(last)
    return last


@dataclass
class _Child:
    """One process of the launch across its runs."""

    spec: ProcessSpec
    proc: subprocess.Popen | None = None  # the current run, None between runs
    runs: int = 0
    restart_at: float | None = None  # monotonic time of the next start
    done: bool = False  # ended for good
    readers: list[threading.Thread] = field(default_factory=list)

    def live(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """The launcher's state; `run` from the main thread, `request_stop` from a signal."""

    def __init__(self, spec: LaunchSpec, console: Console) -> None:
        self.spec = spec
        self.console = console
        self.children = [_Child(proc) for proc in spec.processes]
        self.failure: str | None = None
        self.signame: str | None = None
        self.stopped: list[str] = []
        self.ended_by: str | None = None  # a required process's end: "NAME exited ..."
        self._hurry = False  # a second signal: SIGKILL without the grace period
        self.notify = Notifier()

    def request_stop(self, signum: int) -> None:
        """Signal handler: stop the launch (a second signal kills at once)."""
        self._hurry = self.signame is not None
        self.signame = signal.Signals(signum).name

    @property
    def stopping(self) -> bool:
        return (self.signame is not None or self.failure is not None
                or self.ended_by is not None)

    def run(self) -> None:
        """Start, supervise, then stop every child; raise RtsegError on a failure."""
        try:
            self._start_in_order()
            if not self.stopping:
                self.notify.send("READY=1", f"STATUS={self._running()}")
            while not self.stopping and not all(child.done for child in self.children):
                self._tick()
                time.sleep(POLL_S)
        finally:
            self.notify.send("STOPPING=1", f"STATUS=stopping: {self._why_stopping()}")
            self._stop_all()
            self.notify.close()
        if self.failure is not None:
            raise RtsegError(f"{self.spec.path}: {self.failure}")

    def summary(self) -> str:
        """The launcher's last line, after `run`."""
        stopped = ", ".join(self.stopped) or "none was running"
        if self.signame is not None:
            return f"rtseg launch: stopped by {self.signame}; stopped {stopped}"
        if self.ended_by is not None:
            return f"rtseg launch: {self.ended_by}; stopped {stopped}"
        return "rtseg launch: every process has ended"

    def _running(self) -> str:
        """For systemd's STATUS: which processes run now."""
        names = [child.spec.name for child in self.children if child.live()]
        return f"{len(names)} of {len(self.children)} processes running: {', '.join(names)}"

    def _why_stopping(self) -> str:
        return (self.signame or self.failure or self.ended_by
                or "every process has ended")

    def _start_in_order(self) -> None:
        for child in self.children:
            if self.stopping:
                return
            self._start(child)
            if child.spec.ready and not self.stopping:
                self._wait_ready(child)

    def _start(self, child: _Child) -> None:
        spec = child.spec
        child.runs += 1
        child.restart_at = None
        cwd = self.spec.workdir(spec)
        if cwd is not None and not cwd.is_dir():
            child.done = True
            self._fail(f"process {spec.name!r}: cwd {cwd} is not a folder")
            return
        try:
            proc = subprocess.Popen(
                spec.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=cwd, start_new_session=True,
                env={**_without(os.environ, NOTIFY_ENV), "PYTHONUNBUFFERED": "1",
                     **dict(spec.env)})
        except OSError as exc:
            child.done = True
            self._fail(f"process {spec.name!r} could not start {spec.command[0]!r}: "
                       f"{exc.strerror}; check its command ({spec.file}:{spec.line})")
            return
        child.proc = proc
        shown = f": {shlex.join(spec.command)}" if child.runs == 1 else ""
        self.console.say(f"{spec.name}: started pid {proc.pid} (run {child.runs}){shown}")
        screen = spec.output == "screen"
        child.readers = [
            self.console.follow(spec.name, proc.stdout, self.console.out if screen else None),
            self.console.follow(spec.name, proc.stderr, self.console.err if screen else None)]

    def _tick(self) -> None:
        """Note the children that exited, start those whose restart time has come; tell
        systemd's watchdog the launcher is alive."""
        self.notify.alive()
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                self._ended(child, now)
            elif child.restart_at is not None and now >= child.restart_at and not self.stopping:
                self._start(child)

    def _ended(self, child: _Child, now: float) -> None:
        spec, code = child.spec, child.proc.returncode
        child.proc = None
        _join(child.readers)
        how = _exit_text(code)
        if spec.may_restart(child.runs) and not self.stopping:
            child.restart_at = now + spec.respawn_delay
            self.console.say(f"{spec.name}: {how} (run {child.runs}); respawning in "
                             f"{spec.respawn_delay:g} s")
            self.notify.send(f"STATUS={spec.name} {how} (run {child.runs}), respawning; "
                             f"{self._running()}")
            return
        child.done = True
        self.console.say(f"{spec.name}: {how} (run {child.runs})")
        self.notify.send(f"STATUS={spec.name} {how} (run {child.runs}); {self._running()}")
        if code != 0 and not self.stopping:
            retries = (f" after {child.runs} runs (max_retries = {spec.max_retries})"
                       if spec.respawn else "")
            self._fail(f"process {spec.name!r} {how}{retries}; stopped the launch")
        elif spec.required and not self.stopping:
            self.ended_by = f"{spec.name} (required) {how}"

    def _wait_ready(self, child: _Child) -> None:
        """Until a frame arrives on the child's ``ready`` topic (or its ``ready`` URL
        answers 200), keep supervising."""
        from rtseg.client import MaskSubscriber  # pyzmq + numpy: only where `ready` is used

        spec = child.spec
        started = time.monotonic()
        if is_http(spec.ready):
            return self._wait_http(child, started)
        try:
            sub = MaskSubscriber(spec.endpoint, [spec.ready], **self._ready_keys(spec))
        except RtsegError as exc:
            self._fail(f"process {spec.name!r}: ready: {exc}")
            return
        with sub:
            while not self.stopping:
                try:
                    sub.recv_frame(timeout_ms=round(2000 * POLL_S))  # raw bytes, any kind
                except TimeoutError:
                    self._not_ready_yet(child, started)
                    continue
                self.console.say(f"{spec.name}: ready (a message on {spec.ready} after "
                                 f"{time.monotonic() - started:.1f} s)")
                return

    def _wait_http(self, child: _Child, started: float) -> None:
        """Until GET of the child's ``ready`` URL answers 200 (rtseg serve's /healthz
        answers 503 while its model loads), keep supervising."""
        spec = child.spec
        while not self.stopping:
            if answers_200(spec.ready, timeout_s=1.0):
                self.console.say(f"{spec.name}: ready ({spec.ready} answered 200 after "
                                 f"{time.monotonic() - started:.1f} s)")
                return
            self._not_ready_yet(child, started)
            time.sleep(2 * POLL_S)

    def _ready_keys(self, spec) -> dict[str, str | None]:
        """The `ready` check's CURVE key files, relative to the folder the process runs in
        (as the process's own --curve-secret is)."""
        base = self.spec.workdir(spec) or Path()
        keys = {"curve_server_key": spec.ready_curve_server_key,
                "curve_secret": spec.ready_curve_secret}
        return {key: None if value is None else str(base / value) for key, value in keys.items()}

    def _not_ready_yet(self, child: _Child, started: float) -> None:
        self._tick()
        spec = child.spec
        http = is_http(spec.ready)
        if child.done and not self.stopping:
            self._fail(f"process {spec.name!r} ended before "
                       + (f"{spec.ready} answered 200" if http
                          else f"a message arrived on {spec.ready}"))
        elif time.monotonic() - started > spec.ready_timeout:
            within = f"within ready_timeout = {spec.ready_timeout:g} s"
            self._fail(f"process {spec.name!r}: {spec.ready} did not answer 200 {within}; is "
                       "it the process's --port and route, and does it load in time?" if http
                       else f"process {spec.name!r}: no message on {spec.ready} at "
                       f"{spec.endpoint} {within}; does it publish there (its --bind and "
                       "--name)?")

    def _fail(self, problem: str) -> None:
        if self.failure is None:
            self.failure = problem

    def _stop_all(self) -> None:
        """SIGTERM every live child, SIGKILL those left after the grace period; wait."""
        for child in self.children:  # report exits not yet noted, without restarts
            if child.proc is not None and child.proc.poll() is not None:
                self._ended(child, time.monotonic())
        live = [child for child in self.children if child.live()]
        for child in live:
            _signal_group(child.proc, signal.SIGTERM)
        killed = self._kill_late(live, time.monotonic())
        for child in live:
            if child.live() and child.spec.name not in killed:  # a second signal hurried
                _signal_group(child.proc, signal.SIGKILL)
                killed.add(child.spec.name)
            code = child.proc.wait()
            _join(child.readers)
            how = ("killed by SIGKILL after SIGTERM" if child.spec.name in killed
                   else _exit_text(code))
            self.console.say(f"{child.spec.name}: stopped, {how}")
            self.stopped.append(child.spec.name)

    def _kill_late(self, live: list, since: float) -> set[str]:
        """Wait for the SIGTERMed `live` children to end, SIGKILLing each still running
        when its grace period (its own, else the launch's) has passed since `since`, until
        none is left or a second signal hurries the stop; returns the names killed."""
        deadlines = [since + (self.spec.grace_period if child.spec.grace_period is None
                              else child.spec.grace_period) for child in live]
        killed: set[str] = set()
        while not self._hurry:
            now, waiting = time.monotonic(), False
            for child, deadline in zip(live, deadlines):
                if child.live() and child.spec.name not in killed:
                    if now < deadline:
                        waiting = True
                    else:
                        _signal_group(child.proc, signal.SIGKILL)
                        killed.add(child.spec.name)
            if not waiting:
                return killed
            time.sleep(POLL_S)
        return killed


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send `sig` to the process group the child leads (its own session)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):  # gone already
        pass


def _without(environ, names: tuple[str, ...]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key not in names}


def _join(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + _READER_JOIN_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def answers_200(url: str, timeout_s: float) -> bool:
    """Whether GET `url` answers 200 within `timeout_s` (refused, a 503, a timeout: not
    yet). No proxy: the URL is a process of this launch."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):  # HTTPError (a 503) is a URLError
        return False


def _exit_text(code: int) -> str:
    """``exited with status 3`` or ``killed by SIGKILL`` from a Popen returncode."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
