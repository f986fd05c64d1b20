"""The `NODE/status` heartbeat of PROTOCOL.md ("Status messages"): encode and decode.

A node sends one about once a second, also while no frame arrives, so that a consumer can
tell a dead node (no status) from a dead camera (status says ``reconnecting``) from a
finished file (``ended``). No numpy, no torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtseg.errors import type_name
from rtseg.wire import (
    MAX_SIDE,
    VERSION,
    Limits,
    ProtocolError,
    check_str,
    check_uint,
    field_of,
    pack_frame,
    read_payload,
    split_frame,
)

STATUS_KIND = "status"
NODE_STATES = ("running", "stopping")
SOURCE_STATES = ("ok", "reconnecting", "ended")


@dataclass(frozen=True)
class SourceStatus:
    """One source of a node: its state, output rate (frames/s over the last few seconds),
    frames dropped since start, and the seq of its last published frame (-1: none yet)."""

    name: str
    state: str
    fps: float
    dropped: int
    last_seq: int


@dataclass(frozen=True)
class NodeStatus:
    """A decoded status message; `topic` is the topic it arrived on."""

    topic: str
    node: str
    state: str
    stamp_ns: int
    sources: tuple[SourceStatus, ...]

    def source(self, name: str) -> SourceStatus:
        """The entry of source `name`; KeyError naming the known ones otherwise."""
        for entry in self.sources:
            if entry.name == name:
                return entry
        raise KeyError(f"no source {name!r} in the status of {self.node!r}: "
                       f"{[s.name for s in self.sources]}")


def encode_status(topic: str, *, node: str, state: str, stamp_ns: int,
                  sources: Sequence[SourceStatus]) -> bytes:
    """One status frame: ``topic + b"\\x00" + msgpack map`` (PROTOCOL.md)."""
    if state not in NODE_STATES:
        raise ProtocolError(f"node state must be one of {NODE_STATES}, got {state!r}")
    entries = [_check_source(s.name, s.state, s.fps, s.dropped, s.last_seq) for s in sources]
    payload = {"v": VERSION, "kind": STATUS_KIND, "stamp_ns": check_uint("stamp_ns", stamp_ns),
               "node": check_str("node", node), "state": state,
               "sources": [{"name": e.name, "state": e.state, "fps": e.fps,
                            "dropped": e.dropped, "last_seq": e.last_seq} for e in entries]}
    return pack_frame(topic, payload)


def decode_status(frame: bytes) -> NodeStatus:
    """A status frame -> NodeStatus; ProtocolError for anything PROTOCOL.md does not allow."""
    topic, payload = split_frame(frame)
    try:
        return status_from_fields(topic, read_payload(payload, Limits(MAX_SIDE, MAX_SIDE)))
    except ProtocolError as exc:
        raise ProtocolError(f"{topic}: {exc}") from None


def status_from_fields(topic: str, fields: dict[str, Any]) -> NodeStatus:
    """Checked top-level fields of a status payload (``v`` already checked) -> NodeStatus."""
    kind = field_of(fields, "kind", str)
    if kind != STATUS_KIND:
        raise ProtocolError(f"kind must be {STATUS_KIND!r} for a status message, got {kind!r}")
    state = field_of(fields, "state", str)
    if state not in NODE_STATES:
        raise ProtocolError(f"node state must be one of {NODE_STATES}, got {state[:40]!r}")
    sources = field_of(fields, "sources", list)
    return NodeStatus(topic=topic, node=field_of(fields, "node", str), state=state,
                      stamp_ns=check_uint("stamp_ns", field_of(fields, "stamp_ns", int)),
                      sources=tuple(_source_from(entry) for entry in sources))


def _source_from(entry: Any) -> SourceStatus:
    if not isinstance(entry, dict):
        raise ProtocolError(f"each of 'sources' must be a map, got {type_name(entry)}")
    return _check_source(field_of(entry, "name", str), field_of(entry, "state", str),
                         field_of(entry, "fps", (int, float)),
                         field_of(entry, "dropped", int), field_of(entry, "last_seq", int))


def _check_source(name: str, state: str, fps: float, dropped: int,
                  last_seq: int) -> SourceStatus:
    if state not in SOURCE_STATES:
        raise ProtocolError(f"source state must be one of {SOURCE_STATES}, got {state[:40]!r}")
    if isinstance(fps, bool) or not (math.isfinite(fps) and fps >= 0):
        raise ProtocolError(f"source fps must be a finite float >= 0, got {fps!r}")
    if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < -1:
        raise ProtocolError(f"last_seq must be an int >= -1, got {last_seq!r}")
    return SourceStatus(name=check_str("name", name), state=state, fps=float(fps),
                        dropped=check_uint("dropped", dropped), last_seq=last_seq)
