"""The launcher's output: each child's lines prefixed ``[name] ``, its own ``[launch] ``.

One reader thread per child pipe copies lines as they come (stdout to stdout, stderr to
stderr); a lock keeps lines of different processes from mixing. With a LaunchLog
(``--log-dir``) every line also goes to the log files.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, TextIO

from rtseg.launch.logs import LAUNCHER, LaunchLog

_EOL = "\r\n"


class Console:
    """Writes whole prefixed lines to `out` / `err` (default: sys.stdout / sys.stderr), and
    to `log`'s files when given."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 log: LaunchLog | None = None) -> None:
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self.log = log
        self._lock = threading.Lock()
        self._closed: set[int] = set()  # ids of streams whose reader has gone (EPIPE)

    def say(self, text: str) -> None:
        """One line of the launcher itself on `err`: ``[launch] text``."""
        self.write(self.err, LAUNCHER, text)

    def write(self, stream: TextIO | None, name: str, text: str) -> None:
        """Write ``[name] text`` as one line to `stream` (None: to the log files only); a
        closed stream is silenced, not an error."""
        line = text.rstrip(_EOL)
        with self._lock:
            if self.log is not None:
                self._to_log(name, line)
            if stream is None or id(stream) in self._closed:
                return
            try:
                stream.write(f"[{name}] {line}\n")
                stream.flush()
            except (BrokenPipeError, ValueError):  # reader gone / stream closed
                self._closed.add(id(stream))

    def close_log(self, last: str) -> None:
        """Write the launch's `last` line (its summary or error) to the log and close it."""
        with self._lock:
            if self.log is not None:
                self._to_log(LAUNCHER, last)
            if self.log is not None:
                self.log.close()
            self.log = None

    def _to_log(self, name: str, line: str) -> None:
        """Append to the log files; a failing disk stops the logging, not the launch."""
        try:
            self.log.write(name, line)
        except (OSError, ValueError) as exc:
            self.log = None
            self.err.write(f"[{LAUNCHER}] log files: cannot write ({exc}); logging stopped, "
                           "the launch goes on\n")

    def follow(self, name: str, pipe: IO[bytes], stream: TextIO | None) -> threading.Thread:
        """Start a daemon thread copying `pipe` to `stream` (None: the log files only) line
        by line until EOF."""
        def copy() -> None:
            with pipe:
                for raw in iter(pipe.readline, b""):
                    self.write(stream, name, raw.decode("utf-8", errors="replace"))

        thread = threading.Thread(target=copy, name=f"launch-{name}", daemon=True)
        thread.start()
        return thread
