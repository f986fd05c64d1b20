"""The launcher's output: each child's lines prefixed ``[name] ``, its own ``[launch] ``.

One reader thread per child pipe copies lines as they come (stdout to stdout, stderr to
stderr); a lock keeps lines of different processes from mixing.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, TextIO

_EOL = "\r\n"


class Console:
    """Writes whole prefixed lines to `out` / `err` (default: sys.stdout / sys.stderr)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self._lock = threading.Lock()
        self._closed: set[int] = set()  # ids of streams whose reader has gone (EPIPE)

    def say(self, text: str) -> None:
        """One line of the launcher itself on `err`: ``[launch] text``."""
        self.write(self.err, "launch", text)

    def write(self, stream: TextIO, name: str, text: str) -> None:
        """Write ``[name] text`` as one line; a closed stream is silenced, not an error."""
        with self._lock:
            if id(stream) in self._closed:
                return
            try:
                stream.write(f"[{name}] {text.rstrip(_EOL)}\n")
                stream.flush()
            except (BrokenPipeError, ValueError):  # reader gone / stream closed
                self._closed.add(id(stream))

    def follow(self, name: str, pipe: IO[bytes], stream: TextIO) -> threading.Thread:
        """Start a daemon thread copying `pipe` to `stream` line by line until EOF."""
        def copy() -> None:
            with pipe:
                for raw in iter(pipe.readline, b""):
                    self.write(stream, name, raw.decode("utf-8", errors="replace"))

        thread = threading.Thread(target=copy, name=f"launch-{name}", daemon=True)
        thread.start()
        return thread
