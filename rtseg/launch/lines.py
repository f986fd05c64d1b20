"""Where things are in a launch file's text: line numbers (1-based) of its tables and keys,
so that every mistake is reported as ``FILE:LINE: problem``."""

from __future__ import annotations

import re
from pathlib import Path

from rtseg.errors import RtsegError

_HEADER = re.compile(r"^\s*\[")


class FileLines:
    """The lines of one launch file, its ``[[process]]`` / ``[[include]]`` headers found once.

    `folder` is the file's folder, absolute: what ``$(dirname)`` gives and what a relative
    path in the file (an included file, a cwd) is relative to.
    """

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.folder = str(Path(path).resolve().parent)
        self.text = text.splitlines()
        self.headers = [n for n, line in enumerate(self.text, 1) if _HEADER.match(line)]
        self.arrays = {kind: [n for n, line in enumerate(self.text, 1)
                              if re.match(rf"^\s*\[\[\s*{kind}\s*\]\]", line)]
                       for kind in ("process", "include")}

    def error(self, line: int, problem: str) -> RtsegError:
        return RtsegError(f"{self.path}:{line}: {problem}")

    def table(self, index: int, kind: str = "process") -> int:
        """The line of the `index`-th ``[[kind]]`` header (1 if not found)."""
        found = self.arrays[kind]
        return found[index] if index < len(found) else 1

    def section(self, name: str) -> int:
        """The line of the ``[name]`` table header (1 if not found)."""
        header = re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]")
        return next((n for n, line in enumerate(self.text, 1) if header.match(line)), 1)

    def key(self, key: str, index: int | None = None, start: int | None = None,
            kind: str = "process") -> int:
        """The line of `key` at the top (index and start None), in the `index`-th
        ``[[kind]]`` table or in the table whose header is on line `start`; the table's own
        line (or 1) where the key is not written on a line of its own."""
        if start is None and index is None:
            start, end = 1, self.headers[0] if self.headers else len(self.text) + 1
        else:
            start = self.table(index, kind) if start is None else start
            end = next((n for n in self.headers if n > start), len(self.text) + 1)
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(start, end):
            if pattern.match(self.text[number - 1]):
                return number
        return start
