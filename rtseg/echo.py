"""`rtseg echo`: print what a node publishes, like ``ros2 topic echo`` / ``ros2 topic hz``.

One line per mask, image or status message::

    demo/drivable seq=42 640x480 bits drivable=37.5% latency=12.3ms age=15.1ms
    demo/image seq=42 640x360 jpeg 41.2kB age=16.0ms
    demo/status node=demo running | demo ok 29.9fps dropped=3 last_seq=42

or, with ``hz=True``, one line per topic per second::

    demo/drivable rate=29.97/s period min=31.2ms max=35.1ms mean=33.4ms n=30

or, with ``as_json=True``, one JSON object per line (for ``jq`` and scripts): a mask's
header fields with its drivable fraction or its pixels per class, an image's size in
bytes, a status message's fields, or a rate report's::

    {"topic": "demo/drivable", "kind": "drivable", "seq": 42, ..., "drivable_fraction": 0.375}

or, without topics, the topics a node publishes (``list_topics``, like ``ros2 topic list
-v``), heard over a few seconds::

    demo/classes   classes 640x360 mono8  29.9 Hz
    demo/status    status node=demo sources=demo  1.0 Hz
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from rtseg.client import MaskSubscriber
from rtseg.errors import RtsegError
from rtseg.protocol import NO_PREDICTION, MaskHeader, NodeStatus, ProtocolError
from rtseg.signals import StopRequested

REPORT_PERIOD_S = 1.0
LIST_SECONDS = 2.0  # how long `rtseg echo ENDPOINT` listens for topics by default


def echo(
    endpoint: str,
    topics: Sequence[str],
    *,
    hz: bool = False,
    as_json: bool = False,
    count: int | None = None,
    timeout_s: float | None = None,
    out: TextIO | None = None,
    curve_server_key: str | None = None,
    curve_secret: str | None = None,
) -> int:
    """Print the masks published on `topics` at `endpoint`; return how many were received.
    No `topics`: list the topics published there instead (`list_topics`, listening
    `timeout_s` or LIST_SECONDS); returns how many.

    Args:
        hz: print a rate line per topic per second instead of one line per mask.
        as_json: print each line as one JSON object instead (`json_line`, `json_rate`).
        count: stop after this many valid masks (None: no limit).
        timeout_s: stop when no mask arrives for this long (None: wait forever).
        out: where lines go (default: sys.stdout at call time). Malformed messages are
            skipped with a one-line warning on stderr.
        curve_server_key, curve_secret: for a node run with ``--curve-secret`` (see
            `rtseg.client.MaskSubscriber`).

    A SIGINT/SIGTERM (`StopRequested`) ends the loop: the last rates are printed and it
    propagates with the count in its detail, for the command's summary line.

    Raises:
        RtsegError: a bad `count`/`timeout_s` or an endpoint that cannot be connected to.
    """
    if count is not None and count < 1:
        raise RtsegError(f"--count must be at least 1, got {count}")
    if timeout_s is not None and timeout_s <= 0:
        raise RtsegError(f"--timeout must be positive seconds, got {timeout_s}")
    out = sys.stdout if out is None else out
    if not topics:
        return list_topics(endpoint, timeout_s or LIST_SECONDS, out,
                           curve_server_key=curve_server_key, curve_secret=curve_secret)
    with MaskSubscriber(endpoint, topics, curve_server_key=curve_server_key,
                        curve_secret=curve_secret) as sub:
        kind = _HzLoop if hz else _EchoLoop
        loop = kind(sub, out, count, timeout_s, as_json=as_json)
        try:
            loop.run()
            loop.finish()
        except StopRequested as stop:
            loop.finish()
            stop.detail = f"after {loop.received} messages"
            raise
        except BrokenPipeError:  # e.g. `rtseg echo ... | head`: the reader has gone
            _silence_stdout()
        return loop.received


def list_topics(endpoint: str, seconds: float = LIST_SECONDS, out: TextIO | None = None,
                **curve: str | None) -> int:
    """Listen to every topic at `endpoint` for `seconds` and print one line per topic heard,
    sorted: what it carries and its rate. Returns the number of topics; RtsegError when
    nothing arrives. `curve`: curve_server_key / curve_secret as for `echo`."""
    if seconds <= 0:
        raise RtsegError(f"--timeout must be positive seconds, got {seconds}")
    out = sys.stdout if out is None else out
    heard: dict[str, list] = {}  # topic -> [what it carries, count, first, last arrival]
    with MaskSubscriber(endpoint, (), every_topic=True, **curve) as sub:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                message = sub.recv_message(max(1, round(left * 1000)))
            except TimeoutError:
                break
            except ProtocolError as exc:
                _warn(exc)
                continue
            topic, what = _carries(message)
            now = time.monotonic()
            entry = heard.setdefault(topic, [what, 0, now, now])
            entry[1:] = [entry[1] + 1, entry[2], now]
    if not heard:
        raise RtsegError(f"nothing arrived at {endpoint} within {seconds:g} s: is a node "
                         "running there (`rtseg run`)? (--timeout listens longer)")
    width = max(len(topic) for topic in heard) + 2
    for topic in sorted(heard):
        what, count, first, last = heard[topic]
        rate = f"{(count - 1) / (last - first):.1f} Hz" if count > 1 and last > first else (
            f"{count} in {seconds:g} s")
        print(f"{topic:<{width}}{what}  {rate}", file=out, flush=True)
    return len(heard)


def _carries(message: tuple[MaskHeader, np.ndarray] | NodeStatus) -> tuple[str, str]:
    """(topic, what its messages carry) for the topic list."""
    if isinstance(message, NodeStatus):
        names = ",".join(s.name for s in message.sources)
        return message.topic, f"status node={message.node} sources={names}"
    header = message[0]
    return header.topic, f"{header.kind} {header.width}x{header.height} {header.encoding}"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit flush does not fail on the closed pipe."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@dataclass
class _EchoLoop:
    """Receive masks until `count` or `timeout_s` of silence, printing one line each."""

    sub: MaskSubscriber
    out: TextIO
    count: int | None
    timeout_s: float | None
    received: int = 0
    as_json: bool = False

    def run(self) -> None:
        while self.count is None or self.received < self.count:
            try:
                message = self.sub.recv_message(self._wait_ms())
            except TimeoutError:
                if self._idle():
                    return
                continue
            except ProtocolError as exc:
                _warn(exc)
                continue
            self.received += 1
            self.on_message(message)

    def _wait_ms(self) -> int | None:
        return None if self.timeout_s is None else max(1, round(self.timeout_s * 1000))

    def _idle(self) -> bool:
        return True  # recv waited the whole timeout_s

    def on_message(self, message: tuple[MaskHeader, np.ndarray] | NodeStatus) -> None:
        if self.as_json:
            line = json_line(message, time.time_ns())
        elif isinstance(message, NodeStatus):
            line = format_status(message)
        else:
            line = format_line(*message, time.time_ns())
        print(line, file=self.out, flush=True)

    def finish(self) -> None:
        pass


@dataclass
class _TopicRate:
    """Arrival times (monotonic s) of one topic: the last one and this report's periods."""

    last: float | None = None
    periods: list[float] = field(default_factory=list)
    new: int = 0


@dataclass
class _HzLoop(_EchoLoop):
    """Like `_EchoLoop` but prints per-topic rate lines every `REPORT_PERIOD_S`."""

    rates: dict[str, _TopicRate] = field(default_factory=dict)
    next_report: float = 0.0
    last_arrival: float = 0.0

    def run(self) -> None:
        now = time.monotonic()
        self.next_report = now + REPORT_PERIOD_S
        self.last_arrival = now
        super().run()

    def _wait_ms(self) -> int:
        now = time.monotonic()
        deadline = self.next_report
        if self.timeout_s is not None:
            deadline = min(deadline, self.last_arrival + self.timeout_s)
        return max(1, round((deadline - now) * 1000))

    def _idle(self) -> bool:
        now = time.monotonic()
        self._maybe_report(now)
        return self.timeout_s is not None and now - self.last_arrival >= self.timeout_s

    def on_message(self, message: tuple[MaskHeader, np.ndarray] | NodeStatus) -> None:
        now = time.monotonic()
        self.last_arrival = now
        topic = message.topic if isinstance(message, NodeStatus) else message[0].topic
        rate = self.rates.setdefault(topic, _TopicRate())
        if rate.last is not None:
            rate.periods.append(now - rate.last)
        rate.last = now
        rate.new += 1
        self._maybe_report(now)

    def _maybe_report(self, now: float) -> None:
        if now >= self.next_report:
            self._report()
            self.next_report = now + REPORT_PERIOD_S

    def _report(self) -> None:
        for topic, rate in self.rates.items():
            line = (json_rate if self.as_json else format_rate)(topic, rate.periods, rate.new)
            print(line, file=self.out, flush=True)
            rate.periods, rate.new = [], 0

    def finish(self) -> None:
        if any(rate.new for rate in self.rates.values()):
            self._report()


def format_line(header: MaskHeader, mask: np.ndarray, now_ns: int) -> str:
    """One echo line for a mask ``(H, W) uint8`` or an image (JPEG bytes ``(N,) uint8``);
    `now_ns` is the wall clock for the age."""
    age_ms = (now_ns - header.stamp_ns) / 1e6
    if header.kind == "image":
        return (f"{header.topic} seq={header.seq} {header.width}x{header.height} jpeg "
                f"{mask.size / 1000:.1f}kB age={age_ms:.1f}ms")
    if header.kind == "drivable":
        content = f"drivable={100.0 * np.count_nonzero(mask) / mask.size:.1f}%"
    else:
        seen = np.bincount(mask.ravel(), minlength=256)
        seen[NO_PREDICTION] = 0
        content = f"classes={np.count_nonzero(seen)}/{len(header.classes)}"
    total = header.latency_ms.get("total")
    latency = "-" if total is None else f"{total:.1f}ms"
    return (f"{header.topic} seq={header.seq} {header.width}x{header.height} "
            f"{header.encoding} {content} latency={latency} age={age_ms:.1f}ms")


def json_line(message: tuple[MaskHeader, np.ndarray] | NodeStatus, now_ns: int) -> str:
    """One JSON object for a mask, image or status message (`now_ns`: the wall clock for
    a mask's or image's age)."""
    if isinstance(message, NodeStatus):
        return json.dumps({"topic": message.topic, "kind": "status", "node": message.node,
                           "state": message.state, "stamp_ns": message.stamp_ns,
                           "sources": [vars(s) for s in message.sources]})
    header, data = message
    out = {"topic": header.topic, "kind": header.kind, "seq": header.seq,
           "stamp_ns": header.stamp_ns, "frame_id": header.frame_id, "width": header.width,
           "height": header.height, "encoding": header.encoding, "model": header.model,
           "latency_ms": header.latency_ms, "age_ms": (now_ns - header.stamp_ns) / 1e6}
    if header.kind == "image":
        out["bytes"] = int(data.size)
    elif header.kind == "drivable":
        out["drivable_fraction"] = np.count_nonzero(data) / data.size
    else:
        seen = np.bincount(data.ravel(), minlength=256)
        out["pixels"] = {name: int(seen[i]) for i, name in enumerate(header.classes)
                         if seen[i]}
        out["no_prediction"] = int(seen[NO_PREDICTION])
    return json.dumps(out)


def json_rate(topic: str, periods: Sequence[float], new: int) -> str:
    """`format_rate`'s report as one JSON object (rate and periods None when unknown)."""
    mean = sum(periods) / len(periods) if periods else None
    return json.dumps({"topic": topic, "messages": new,
                       "rate_hz": None if not new or mean is None else 1.0 / mean,
                       "period_ms": None if mean is None else {
                           "min": 1000 * min(periods), "max": 1000 * max(periods),
                           "mean": 1000 * mean}})


def format_status(status: NodeStatus) -> str:
    """One echo line for a status message: the node's state, then each source's."""
    parts = [f"{s.name} {s.state} {s.fps:.1f}fps dropped={s.dropped} last_seq={s.last_seq}"
             for s in status.sources]
    return f"{status.topic} node={status.node} {status.state} | " + " | ".join(parts)


def format_rate(topic: str, periods: Sequence[float], new: int) -> str:
    """One hz line from the periods (s) between arrivals since the last report."""
    if not new:
        return f"{topic} rate=0/s no masks since the last report"
    if not periods:
        return f"{topic} rate=-/s n={new} (a period needs two masks)"
    mean = sum(periods) / len(periods)
    return (f"{topic} rate={1.0 / mean:.2f}/s period min={1000 * min(periods):.1f}ms "
            f"max={1000 * max(periods):.1f}ms mean={1000 * mean:.1f}ms n={new}")


def _warn(exc: Exception) -> None:
    print(f"warning: skipped a malformed message: {exc}", file=sys.stderr, flush=True)
