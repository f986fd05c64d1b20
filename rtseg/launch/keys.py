"""The checks of a launch file's values: each takes the TOML value and returns it checked
(or converted), or raises ValueError saying what it must be; rtseg.launch.spec puts the
file, line and key in front."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rtseg.launch.logs import LAUNCHER

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def seconds(positive: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                value <= 0 if positive else value < 0):
            raise ValueError(f"must be a number of seconds {'> 0' if positive else '>= 0'}")
        return float(value)
    return check


def retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ValueError("must be an integer >= 0, or -1 for forever")
    return value


def command(value: Any) -> tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(arg, str) for arg in value) or not value[0]):
        raise ValueError('must be a non-empty array of strings, e.g. ["rtseg", "run"]')
    return tuple(value)


def env(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError('must be a table of strings, e.g. { OMP_NUM_THREADS = "2" }')
    return tuple(sorted(value.items()))


def endpoint(value: Any) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ValueError("must be a ZeroMQ endpoint like tcp://127.0.0.1:5555 or ipc://PATH")
    return value


def name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError("must be letters, digits, '_', '.' or '-', e.g. \"node\"")
    if value == LAUNCHER:
        raise ValueError(f"must not be {LAUNCHER!r}: [{LAUNCHER}] marks the launcher's own "
                         "lines (and its launch.log)")
    return value


def output(value: Any) -> str:
    if value not in ("screen", "log"):
        raise ValueError('must be "screen" (the console, and --log-dir\'s files) or "log" '
                         "(--log-dir's files only)")
    return value
