"""systemd's service notifications (sd_notify(3)) for `rtseg launch` as a Type=notify unit.

Under systemd with ``Type=notify`` the launcher tells the service manager, over the
datagram socket named in ``$NOTIFY_SOCKET``:
- ``READY=1`` once every process has started and each ``ready`` topic or URL has answered
  (``systemctl start`` returns then, and units ordered ``After=`` it start only then),
  with a ``STATUS=`` line that ``systemctl status`` shows;
- ``STATUS=`` again when a process exits and respawns, or ends;
- ``STOPPING=1`` when the launch begins to stop;
- ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` from its supervising loop (``WatchdogSec=``),
  so a launcher that hangs is restarted by systemd.
Without ``$NOTIFY_SOCKET`` (a terminal, a container without systemd) every call does
nothing. The children do not inherit these variables (`NOTIFY_ENV`), as sd_notify's
``unset_environment`` does, so none of them can speak for the launcher. A send that fails
(systemd gone) is ignored: the notifications never stop the launch.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)
NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """The launcher's channel to systemd, from `environ` (see module doc)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        path = environ.get("NOTIFY_SOCKET", "")
        # "/path" or "@abstract" (a leading NUL byte); other kinds (vsock:) are not spoken
        self._address = "\0" + path[1:] if path.startswith("@") else path
        if path and not path.startswith(("/", "@")):
            log.warning("NOTIFY_SOCKET=%s is not a unix socket path: not notifying", path)
            self._address = ""
        self._sock: socket.socket | None = None
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.watchdog_s = _watchdog_period(environ)
        self._last_ping = float("-inf")

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> None:
        """One datagram of ``NAME=VALUE`` lines, e.g. send("READY=1", "STATUS=...")."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify %s: %s", fields, exc)

    def alive(self) -> None:
        """``WATCHDOG=1`` when half the watchdog period has passed since the last one."""
        if self.watchdog_s is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_s:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_period(environ: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when it is meant for this process
    (``$WATCHDOG_PID`` unset or ours); None without a watchdog."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", "0"))
        pid = int(environ.get("WATCHDOG_PID", os.getpid()))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 and pid == os.getpid() else None
