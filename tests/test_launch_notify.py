"""`rtseg launch` under systemd (Type=notify): READY, STATUS, STOPPING and watchdog pings
received on a real datagram socket, as systemd's $NOTIFY_SOCKET receives them."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid

import pytest

from rtseg.launch.sdnotify import Notifier
from tests.test_launch import Health, Launcher, py, write

WAIT_S = 60.0


class NotifySocket:
    """A bound AF_UNIX datagram socket; `until(field)` reads datagrams up to one that has
    the line `field`, keeping each with its arrival time."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.got: list[tuple[float, list[str]]] = []

    def until(self, field: str, timeout_s: float = WAIT_S) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                lines = self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                raise AssertionError(f"no {field} within {timeout_s} s; got "
                                     f"{[m for _, m in self.got]}") from None
            self.got.append((time.time(), lines))
            if field in lines:
                return lines

    def close(self) -> None:
        self.sock.close()


def test_ready_after_the_ready_url_then_watchdog_pings_then_stopping(tmp_path):
    """READY=1 only once the first process's ready URL answered 200 and both run; pings
    every half WATCHDOG_USEC, also while waiting for ready; SIGTERM: STOPPING=1, exit 0;
    the children do not see the variables."""
    health, notify = Health(loading=3), NotifySocket(str(tmp_path / "notify.sock"))
    file = write(tmp_path, f"""
grace_period = 5

[[process]]
name = "server"
command = {py("import time; time.sleep(600)")}
ready = "{health.url}"
ready_timeout = 60

[[process]]
name = "worker"
command = {py("import os, time; print('inherited', os.environ.get('NOTIFY_SOCKET'), "
              "os.environ.get('WATCHDOG_USEC'), flush=True); time.sleep(600)")}
""")
    env = {**os.environ, "NOTIFY_SOCKET": notify.sock.getsockname(),
           "WATCHDOG_USEC": "400000"}  # a ping every 0.2 s
    launcher = Launcher(file, env=env)
    try:
        ready = notify.until("READY=1")
        ready_at = notify.got[-1][0]
        before = len(notify.got) - 1
        for _ in range(2):
            notify.until("WATCHDOG=1")
        launcher.wait_for(r"\[worker\] inherited None None")
        launcher.proc.send_signal(signal.SIGTERM)
        stopping = notify.until("STOPPING=1")
        assert launcher.finish() == 0
    finally:
        launcher.stop()
        health.close()
        notify.close()
    assert "STATUS=2 of 2 processes running: server, worker" in ready, ready
    assert health.ready_at is not None and ready_at >= health.ready_at
    assert before >= 1 and all(m == ["WATCHDOG=1"] for _, m in notify.got[:before]), notify.got
    assert "STATUS=stopping: SIGTERM" in stopping, stopping


def test_a_respawn_and_a_failure_are_told_in_status(tmp_path):
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    file = write(tmp_path, f"""
[[process]]
name = "flaky"
command = {py("raise SystemExit(3)")}
respawn = true
respawn_delay = 0.1
max_retries = 1
""")
    launcher = Launcher(file, env={**os.environ, "NOTIFY_SOCKET": notify.sock.getsockname()})
    try:
        notify.until("READY=1")
        respawning = notify.until("STATUS=flaky exited with status 3 (run 1), respawning; "
                                  "0 of 1 processes running: ")
        stopping = notify.until("STOPPING=1")
        assert launcher.finish() == 1
    finally:
        launcher.stop()
        notify.close()
    assert respawning and any("process 'flaky' exited with status 3 after 2 runs" in line
                              for line in stopping), stopping
    assert not any("WATCHDOG=1" in m for _, m in notify.got)  # no WATCHDOG_USEC: no pings


def test_an_abstract_socket_and_whose_watchdog_it_is():
    name = f"rtseg-test-{uuid.uuid4().hex}"
    notify = NotifySocket("\0" + name)
    try:
        ours = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000",
                         "WATCHDOG_PID": str(os.getpid())})
        assert ours.enabled and ours.watchdog_s == pytest.approx(1.5)
        ours.send("READY=1", "STATUS=x")
        assert notify.until("READY=1", timeout_s=10) == ["READY=1", "STATUS=x"]
        ours.alive()
        ours.alive()  # within the period: no second ping
        ours.send("STATUS=after")
        notify.until("STATUS=after", timeout_s=10)
        assert [m for _, m in notify.got].count(["WATCHDOG=1"]) == 1
        ours.close()
    finally:
        notify.close()
    theirs = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000",
                       "WATCHDOG_PID": str(os.getpid() + 1)})
    assert theirs.watchdog_s is None
    theirs.send("READY=1")  # nobody listens any more: ignored, not raised
    theirs.close()


def test_without_systemd_nothing_is_sent(caplog):
    assert not Notifier({}).enabled
    Notifier({}).send("READY=1")
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    assert "not a unix socket path" in caplog.text
