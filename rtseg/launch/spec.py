"""The launch file format of `rtseg launch`: TOML parsed once into frozen dataclasses.

```toml
grace_period = 3.0                  # optional: seconds from SIGTERM to SIGKILL on stop

[[process]]
name = "node"                       # required: the [node] prefix of its output lines
command = ["rtseg", "run", "--source", "demo"]   # required; "rtseg" = this rtseg
respawn = true                      # start it again whenever it exits
required = false                    # its end (any status) ends the launch; not with respawn
respawn_delay = 2.0                 # seconds before each restart
max_retries = -1                    # restarts allowed (-1: forever)
ready = "demo/drivable"             # start the next process once a message came here
endpoint = "tcp://127.0.0.1:5555"   # where `ready` is published
ready_timeout = 60.0
ready_curve_server_key = "keys/node.key"      # a node run with --curve-secret: its
ready_curve_secret = "keys/launch.key_secret" # public key (and a listed client's pair)
env = { OMP_NUM_THREADS = "2" }     # added to the launcher's environment
output = "screen"                   # its lines on the console; "log": --log-dir files only
grace_period = 10.0                 # its own SIGTERM-to-SIGKILL seconds (default: the file's)
cwd = "."                           # relative to the launch file's folder
if = "$(var viewer)"                # started only if true (`unless`: only if false)

[[include]]                         # the processes of another launch file, started here
file = "$(dirname)/demo.toml"       # relative to this file's folder
args = { source = "camera1", name = "rear" }   # its launch arguments
namespace = "rear"                  # its processes are named rear/node, rear/view...
if = "$(var rear)"                  # `unless` too
```

An ``[arg]`` table declares launch arguments for ``$(var NAME)`` in any string of a
process (see `rtseg.launch.args`); ``rtseg launch FILE NAME:=VALUE`` gives them. An
included file sees only the arguments its ``args`` gives it (its own defaults otherwise),
as ROS 2's scoped ``<include>`` with ``<arg>`` children; processes and includes start in
the order they are written; the longest top-level ``grace_period`` of the files applies
to every process without its own.
Any mistake (TOML syntax, an unknown key, a missing command, a wrong type) is an
`RtsegError` of one line, ``FILE:LINE: problem``, raised before anything starts.
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from rtseg.config import DEFAULT_ENDPOINT
from rtseg.errors import RtsegError
from rtseg.launch import keys
from rtseg.launch.args import (
    ArgSpec,
    condition,
    declare,
    include_args,
    parse_given,
    resolve,
    substitute_all,
)
from rtseg.launch.lines import FileLines

_HELP = "see launch/README.md for the format"


@dataclass(frozen=True)
class ProcessSpec:
    """One ``[[process]]`` of a launch file (see the module docstring for each key)."""

    name: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    respawn: bool = False
    required: bool = False  # when it ends, the launch ends (ROS 1's required)
    output: str = "screen"  # "screen": console (and log files); "log": log files only
    respawn_delay: float = 1.0
    max_retries: int = -1
    ready: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    ready_timeout: float = 60.0
    ready_curve_server_key: str | None = None  # key files for a CURVE node's `ready`
    ready_curve_secret: str | None = None
    grace_period: float | None = None  # SIGTERM to SIGKILL on stop; None: the launch's
    line: int = 0  # line of its [[process]] header in the file
    file: str = ""  # the launch file it is written in (the launched one or an included one)

    def argv(self) -> list[str]:
        """The command to execute: a leading ``rtseg`` runs this Python's rtseg."""
        if self.command[0] == "rtseg":
            return [sys.executable, "-m", "rtseg", *self.command[1:]]
        return list(self.command)

    def may_restart(self, runs: int) -> bool:
        """Whether it starts again after its `runs`-th run has ended."""
        return self.respawn and (self.max_retries < 0 or runs <= self.max_retries)


def is_http(ready: str | None) -> bool:
    """Whether a process's ``ready`` is a URL to GET rather than a topic."""
    return bool(ready) and ready.startswith(("http://", "https://"))


@dataclass(frozen=True)
class LaunchSpec:
    """A parsed launch file: its processes in start order (those an ``if`` / ``unless``
    switched off left out) and its launch arguments' values."""

    path: str
    processes: tuple[ProcessSpec, ...]
    grace_period: float = 3.0
    values: tuple[tuple[str, str], ...] = ()
    skipped: tuple[str, ...] = ()  # processes switched off by if / unless

    def workdir(self, proc: ProcessSpec) -> Path | None:
        """The folder `proc` runs in: its cwd relative to this file's folder (None: the
        launcher's own)."""
        return Path(self.path).parent / proc.cwd if proc.cwd else None

    def describe(self) -> str:
        """One line per process, for ``rtseg launch --check``."""
        lines = []
        for proc in self.processes:
            extra = [f"cwd={proc.cwd}"] if proc.cwd else []
            if proc.required:
                extra.append("required: its end ends the launch")
            if proc.respawn:
                retries = "forever" if proc.max_retries < 0 else f"max {proc.max_retries}"
                extra.append(f"respawn after {proc.respawn_delay:g} s ({retries})")
            if is_http(proc.ready):
                extra.append(f"ready when {proc.ready} answers 200")
            elif proc.ready:
                extra.append(f"ready on {proc.ready} at {proc.endpoint}")
            if proc.grace_period is not None:
                extra.append(f"SIGKILL {proc.grace_period:g} s after SIGTERM")
            lines.append(f"{proc.name}: {shlex.join(proc.command)}"
                         + (f"  [{'; '.join(extra)}]" if extra else ""))
        lines += [f"{name}: not started (if / unless)" for name in self.skipped]
        if self.values:
            lines.insert(0, "arguments: " + " ".join(f"{k}:={shlex.quote(v)}"
                                                     for k, v in self.values))
        return "\n".join(lines)


_PROCESS_KEYS: dict[str, Callable[[Any], Any]] = {
    "name": keys.name, "command": keys.command, "env": keys.env, "cwd": keys.string,
    "respawn": keys.flag, "required": keys.flag, "output": keys.output,
    "respawn_delay": keys.seconds(positive=False), "max_retries": keys.retries,
    "ready": keys.string, "endpoint": keys.endpoint,
    "ready_timeout": keys.seconds(positive=True),
    "ready_curve_server_key": keys.string, "ready_curve_secret": keys.string,
    "grace_period": keys.seconds(positive=False),
}
_TOP_KEYS: dict[str, Callable[[Any], Any]] = {"grace_period": keys.seconds(positive=False)}
_CONDITIONS = ("if", "unless")
_INCLUDE_KEYS = ("file", "args", "namespace")
_DEFAULT_GRACE = 3.0
assert set(_PROCESS_KEYS) == {f.name for f in fields(ProcessSpec)} - {"line", "file"}


def load_launch_file(path: str | Path, given: Sequence[str] = ()) -> LaunchSpec:
    """Read and check a launch file (and the files it includes), its launch arguments set
    from `given` (``NAME:=VALUE`` items of the command line) or their defaults.

    Raises:
        RtsegError: ``FILE:LINE: problem`` for a missing file, bad TOML, an unknown key, a
            missing name or command, a wrong type, a duplicate name, a bad substitution or
            include; ``FILE: problem`` for a launch argument given wrongly or not at all.
    """
    raw, lines = _read(path)
    args = _declared(raw.get("arg", {}), lines)
    try:
        values = resolve(args, parse_given(given), lines.folder)
    except ValueError as exc:
        raise RtsegError(f"{path}: {exc}; see `rtseg launch {path} --show-args`") from None
    processes, skipped, graces = _build(raw, lines, values, (Path(path).resolve(),))
    if not processes:
        first = min(lines.arrays["process"][:1] + lines.arrays["include"][:1], default=1)
        raise lines.error(first, "every [[process]] is switched off by its if / unless: "
                          "nothing to start")
    return LaunchSpec(path=lines.path, processes=processes, values=tuple(values.items()),
                      grace_period=max(graces, default=_DEFAULT_GRACE), skipped=skipped)


def show_launch_args(path: str | Path) -> str:
    """One line per launch argument the file declares, for ``rtseg launch FILE
    --show-args`` (like ``ros2 launch -s``); none need be given."""
    raw, lines = _read(path)
    args = _declared(raw.get("arg", {}), lines)
    if not args:
        return f"{path} declares no launch arguments"
    return "\n".join([f"arguments of {path} (give them as NAME:=VALUE):",
                      *(arg.show() for arg in args)])


def _read(path: str | Path) -> tuple[dict, FileLines]:
    """The file's TOML and its lines; a missing file or bad TOML as one-line errors."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RtsegError(f"launch file {path}: cannot read it ({exc.strerror}); {_HELP}"
                         ) from None
    lines = FileLines(str(path), text)
    try:
        return tomllib.loads(text), lines
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"at line (\d+)", str(exc))
        line = int(at.group(1)) if at else max(1, len(lines.text))  # else: end of document
        raise lines.error(line, f"invalid TOML: {exc}") from None


def _declared(table: Any, lines: FileLines) -> tuple[ArgSpec, ...]:
    """The ``[arg]`` table as ArgSpecs, a mistake named with its line."""
    header = lines.section("arg")
    if not isinstance(table, dict):
        raise lines.error(header, '[arg] must be a table of NAME = "DEFAULT"')
    args = []
    for name, value in table.items():
        try:
            args.append(declare(name, value))
        except ValueError as exc:
            raise lines.error(lines.key(name, start=header), str(exc)) from None
    return tuple(args)


Built = tuple[tuple[ProcessSpec, ...], tuple[str, ...], tuple[float, ...]]


def _build(raw: dict, lines: FileLines, values: dict[str, str],
           chain: tuple[Path, ...]) -> Built:
    """One file's processes in the order written (an include's in its place), the names of
    those switched off, and the grace periods it and its includes set. `chain`: the files
    being read, outermost first (an include of one of them is a loop)."""
    known = ["process", "include", "arg", *_TOP_KEYS]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise lines.error(lines.key(unknown[0]), _unknown(unknown[0], known))
    entries = []
    for kind in ("process", "include"):
        tables = raw.get(kind, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise lines.error(lines.key(kind), f"write each {kind} as a [[{kind}]] table; {_HELP}")
        entries += [(lines.table(i, kind), kind, i, table) for i, table in enumerate(tables)]
    if not entries:
        raise lines.error(lines.key("process"), "no [[process]] tables: add one per process "
                          f"with name and command (or an [[include]] of another file); {_HELP}")
    graces = [_check(_TOP_KEYS[key], key, raw[key], lines, lines.key(key))
              for key in _TOP_KEYS if key in raw]
    processes: list[ProcessSpec] = []
    skipped: list[str] = []
    where: dict[str, int] = {}  # name -> the line of its [[process]] or [[include]] here
    for line, kind, index, table in sorted(entries, key=lambda entry: entry[0]):
        if kind == "include":
            more, off, longer = _include(table, index, lines, values, chain)
            skipped += off
            graces += longer
        else:
            proc, on = _process(table, index, lines, values)
            more = (proc,) if on else ()
            skipped += () if on else (proc.name,)
        for proc in more:
            if proc.name in where:
                raise lines.error(line, f'two processes are named "{proc.name}" (the other '
                                  f"from line {where[proc.name]}): names must be unique (they "
                                  "prefix the output lines); give an [[include]] a namespace")
            where[proc.name] = line
        processes += more
    return tuple(processes), tuple(skipped), tuple(graces)


def _substituted(table: dict, index: int, kind: str, label: str, lines: FileLines,
                 values: dict[str, str]) -> tuple[dict, bool]:
    """The `index`-th ``[[kind]]`` table with its keys checked and substitutions made, less
    its if / unless, and whether they let it start."""
    keys = [*(_PROCESS_KEYS if kind == "process" else _INCLUDE_KEYS), *_CONDITIONS]
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise lines.error(lines.key(unknown[0], index, kind=kind),
                          f"{label}: {_unknown(unknown[0], keys)}")
    substituted = {}
    for key, value in table.items():
        try:
            substituted[key] = substitute_all(value, values, lines.folder)
        except ValueError as exc:
            raise lines.error(lines.key(key, index, kind=kind), f"{label}: {key}: {exc}"
                              ) from None
    on = True
    for key in _CONDITIONS:
        if key in substituted:
            value = _check(condition, f"{label}: {key}", substituted.pop(key), lines,
                           lines.key(key, index, kind=kind))
            on = on and value == (key == "if")
    return substituted, on


def _process(table: dict, index: int, lines: FileLines,
             values: dict[str, str]) -> tuple[ProcessSpec, bool]:
    """The `index`-th ``[[process]]`` with its substitutions made, and whether its if /
    unless lets it start."""
    header = lines.table(index)
    label = f'[[process]] "{table["name"]}"' if isinstance(table.get("name"), str) else (
        f"[[process]] #{index + 1}")
    table, on = _substituted(table, index, "process", label, lines, values)
    for key in ("name", "command"):
        if key not in table:
            raise lines.error(header, f"{label} has no {key}: add e.g. "
                              + ('name = "node"' if key == "name"
                                 else 'command = ["rtseg", "run", "--source", "demo"]'))
    checked = {key: _check(_PROCESS_KEYS[key], f"{label}: {key}", value, lines,
                           lines.key(key, index)) for key, value in table.items()}
    if checked.get("required") and checked.get("respawn"):
        raise lines.error(lines.key("required", index), f"{label}: required and respawn "
                          "exclude each other (a required process's end ends the launch); "
                          "keep one")
    return ProcessSpec(line=header, file=lines.path, **checked), on


def _include(table: dict, index: int, lines: FileLines, values: dict[str, str],
             chain: tuple[Path, ...]) -> Built:
    """The `index`-th ``[[include]]``: the processes of the file it names, read with its
    ``args`` (named NAMESPACE/NAME, a relative cwd made relative to their own file), the
    names of those switched off, its grace periods; only ``include FILE`` switched off
    when its own if / unless says so (the file is then not read)."""
    header = lines.table(index, "include")
    table, on = _substituted(table, index, "include", f"[[include]] #{index + 1}", lines,
                             values)
    if "file" not in table:
        raise lines.error(header, f'[[include]] #{index + 1} has no file: add e.g. file = '
                          '"$(dirname)/demo.toml"')
    line = {key: lines.key(key, index, kind="include") for key in _INCLUDE_KEYS}
    file = _check(keys.string, f"[[include]] #{index + 1}: file", table["file"], lines,
                  line["file"])
    label = f"[[include]] {file}"
    given = _check(include_args, f"{label}: args", table.get("args", {}), lines, line["args"])
    prefix = (_check(keys.name, f"{label}: namespace", table["namespace"], lines,
                     line["namespace"]) + "/") if "namespace" in table else ""
    if not on:
        return (), (f"include {file}",), ()
    path = Path(lines.folder) / file
    chain = (*chain, path.resolve())
    if chain[-1] in chain[:-1]:
        loop = " -> ".join(str(p) for p in chain)
        raise lines.error(header, f"{label}: the files include each other: {loop}")
    if not path.is_file():
        raise lines.error(line["file"], f"{label}: no such file {path} (a relative path is "
                          "relative to this file's folder)")
    raw, inner = _read(path)
    try:
        inner_values = resolve(_declared(raw.get("arg", {}), inner), given, inner.folder)
    except ValueError as exc:
        raise lines.error(header, f"{label}: {exc}; see `rtseg launch {path} --show-args`"
                          ) from None
    processes, skipped, graces = _build(raw, inner, inner_values, chain)
    processes = tuple(replace(proc, name=prefix + proc.name,
                              cwd=str(Path(inner.folder) / proc.cwd) if proc.cwd else None)
                      for proc in processes)
    return processes, tuple(prefix + name for name in skipped), graces


def _check(check: Callable[[Any], Any], what: str, value: Any, lines: FileLines, line: int):
    try:
        return check(value)
    except ValueError as exc:
        raise lines.error(line, f"{what} {exc}, not {value!r:.60}") from None


def _unknown(key: str, known: list[str]) -> str:
    return f"unknown key {key!r}; known keys: {', '.join(known)}"
