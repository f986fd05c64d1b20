"""Log files of a launch (``rtseg launch FILE --log-dir DIR``), as ``ros2 launch`` keeps
them under ``~/.ros/log``: a new folder per launch, ``DIR/YYYY-MM-DD-HH-MM-SS-PID/``, and
``DIR/latest`` pointing at the newest, holding

- ``launch.log``: every line the console shows, the launcher's and each process's, and
- ``NAME.log`` per process (``front/node.log`` for a namespaced one): its stdout and stderr
  lines across all its runs, and the launcher's lines about it (``[launch] node: started
  pid 4242 (run 2)``),

each line after the local time it was read at (``2026-12-07 16:30:01.123``), so a drive's
crash can be read after the fact on a robot with no terminal.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import TextIO

from rtseg.errors import RtsegError

LAUNCHER = "launch"  # the launcher's own lines' name, and its file launch.log


class LaunchLog:
    """The open log files of one launch; `write` is called under the console's lock."""

    def __init__(self, root: str | Path, names: tuple[str, ...] = ()) -> None:
        """A new folder under `root` (made if missing); `names`: the processes, whose own
        files also get the launcher's lines about them."""
        root = Path(root)
        self.names = frozenset(names)
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.folder = root / f"{time.strftime('%Y-%m-%d-%H-%M-%S')}-{os.getpid()}"
            self.folder.mkdir()
            self._all = (self.folder / f"{LAUNCHER}.log").open("a", encoding="utf-8")
        except OSError as exc:
            raise RtsegError(f"--log-dir {root}: cannot write a log folder there "
                             f"({exc.strerror}); give a folder you may write in") from None
        self._files: dict[str, TextIO] = {}
        _link_latest(root, self.folder)

    def write(self, name: str, line: str) -> None:
        """Append ``line`` (no newline) of process `name` (or of the launcher) to its files."""
        stamp = datetime.datetime.now().isoformat(sep=" ", timespec="milliseconds")
        self._all.write(f"{stamp} [{name}] {line}\n")
        self._all.flush()
        if name == LAUNCHER:
            about = line.split(": ", 1)[0]
            if about in self.names:
                self._own(about, f"{stamp} [{LAUNCHER}] {line}")
            return
        self._own(name, f"{stamp} {line}")

    def _own(self, name: str, text: str) -> None:
        """Append `text` to process `name`'s file (opened on its first line)."""
        file = self._files.get(name)
        if file is None:
            path = self.folder / f"{name}.log"
            path.parent.mkdir(parents=True, exist_ok=True)  # a namespace's folder
            file = self._files[name] = path.open("a", encoding="utf-8")
        file.write(text + "\n")
        file.flush()

    def close(self) -> None:
        for file in (self._all, *self._files.values()):
            file.close()


def _link_latest(root: Path, folder: Path) -> None:
    """``root/latest`` -> `folder` (relative), replacing an older link; best effort: a
    file system without links just has no ``latest``."""
    latest = root / "latest"
    try:
        if latest.is_symlink():
            latest.unlink()
        if not latest.exists():
            latest.symlink_to(folder.name, target_is_directory=True)
    except OSError:
        pass
