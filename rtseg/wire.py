"""Bounded reading of a MessagePack payload, and the writing of a frame (`pack_frame`):
the layer below `rtseg.protocol`.

A frame off the network may be anything. `read_payload` reads the top-level map with
msgpack's streaming `Unpacker`, looking at each value's type byte before unpacking it, so
that:

- a value nested deeper than `MAX_DEPTH` (any field of PROTOCOL.md is at most three
  levels deep: `sources` = array of maps of scalars) is refused before it is built;
- strings, bins, arrays and maps are capped (`Limits`), so no length prefix makes the
  reader allocate more than the limit allows;
- keys PROTOCOL.md does not define for the message's kind are skipped without building
  their values (C-level `skip`, whose own stack refuses absurd nesting), as unknown keys
  must be ignored. A first pass finds `kind`, skipping every value but that one.

A mask's bytes are never fed to msgpack (which copies all it is fed): `set_aside_bins`
swaps each large top-level bin for an empty one and keeps the bytes as a view, so a frame
received without a copy is copied once, into the mask the caller keeps.

Every failure is a `ProtocolError` naming the problem. No numpy, no torch here.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import msgpack

from rtseg.errors import type_name
from rtseg.msgpack_walk import BIN_HEADER as _BIN_HEADER
from rtseg.msgpack_walk import set_aside_bins

VERSION = 1
MAX_SIDE = 8192
MAX_DEPTH = 3  # sources -> source map -> scalar
MAX_ITEMS = 1024  # elements of one array / entries of one map
MAX_TOTAL_ITEMS = 8192  # values built from one payload, all levels together
MAX_STR = 64 * 1024  # bytes of one string (frame_id may be a long URL)
FRAME_OVERHEAD = 1 << 20  # bytes of a frame beyond its data: topic, keys, names

MASK_KEYS = frozenset({
    "v", "kind", "seq", "stamp_ns", "frame_id", "width", "height", "encoding", "data",
    "classes", "model", "latency_ms",
})  # fmt: skip  (masks and images)
STATUS_KEYS = frozenset({"v", "kind", "stamp_ns", "node", "state", "sources"})
_ARRAY_TAGS = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}
_MAP_TAGS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}
_STR_TAGS = frozenset(range(0xA0, 0xC0)) | {0xD9, 0xDA, 0xDB}
_NEVER_USED = 0xC1


class ProtocolError(ValueError):
    """A frame or a mask that does not follow PROTOCOL.md; the message names the problem."""


@dataclass(frozen=True)
class Limits:
    """What one reader accepts: mask/image sides, hence the largest `data` and frame."""

    max_width: int = MAX_SIDE
    max_height: int = MAX_SIDE

    @property
    def max_data(self) -> int:
        """Largest `data` in bytes: a mono8 mask at the limit, plus a PNG's worst-case
        overhead over raw pixels (a filter byte per row, zlib's stored blocks)."""
        pixels = self.max_width * self.max_height
        return pixels + self.max_height + pixels // 1000 + 4096

    @property
    def max_frame(self) -> int:
        """Largest whole frame (topic + payload) in bytes; the SUB socket's MAXMSGSIZE."""
        return self.max_data + FRAME_OVERHEAD


def read_payload(payload: bytes | memoryview, limits: Limits) -> dict[str, Any]:
    """MessagePack bytes -> ``{key: value}`` of the keys PROTOCOL.md defines.

    A bin `data` comes back as a memoryview into `payload` (not copied: its size is
    checked against width x height before anything is made from it).

    Raises:
        ProtocolError: not a map, not valid MessagePack, trailing bytes, a value too
            deep, too long or too many, or a non-str key among the known ones.
    """
    stream, big = set_aside_bins(memoryview(payload), limits.max_data)
    try:
        kind = _Reader(stream, limits, big).top_map(frozenset({"kind"})).get("kind")
        reader = _Reader(stream, limits, big)
        fields = reader.top_map(STATUS_KEYS if kind == "status" else MASK_KEYS)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"payload is not valid MessagePack ({type_name(exc)}"
                            f"{': ' + str(exc) if str(exc) else ''})") from None
    if not reader.at_end:
        raise ProtocolError(f"payload is not valid MessagePack ({len(stream) - reader.offset} "
                            "extra bytes after its map)")
    return fields


class _Reader:
    """One pass over one payload; counts what it builds."""

    def __init__(self, stream: bytes | memoryview, limits: Limits,
                 big: dict[int, memoryview] | None = None) -> None:
        self._payload = memoryview(stream)
        self._big = big or {}
        self._built = 0
        self._unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, max_buffer_size=max(len(stream), 1),
            max_bin_len=limits.max_data, max_str_len=MAX_STR, max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS, max_ext_len=MAX_ITEMS)
        self._unpacker.feed(stream)

    @property
    def at_end(self) -> bool:
        return self.offset == len(self._payload)

    @property
    def offset(self) -> int:
        return self._unpacker.tell()

    def _tag(self) -> int:
        if self.offset >= len(self._payload):
            raise ProtocolError("payload is not valid MessagePack (truncated inside a value)")
        return self._payload[self.offset]

    def top_map(self, keys: frozenset[str]) -> dict[str, Any]:
        """The top-level map's entries whose key is in `keys`; the rest skipped unbuilt."""
        tag = self._tag()
        if tag == _NEVER_USED:
            raise ProtocolError("payload is not valid MessagePack (type byte 0xc1 is never used)")
        if tag not in _MAP_TAGS:
            raise ProtocolError(f"payload must be a MessagePack map, got type byte 0x{tag:02x}")
        fields: dict[str, Any] = {}
        for _ in range(self._count(self._unpacker.read_map_header(), "the payload map")):
            if self._tag() not in _STR_TAGS:  # not one of ours: skip key and value unbuilt
                self._unpacker.skip()
                self._unpacker.skip()
                continue
            key = self._unpacker.unpack()
            if key not in keys:
                self._unpacker.skip()
            elif key == "data" and self._tag() in _BIN_HEADER:
                fields[key] = self._bin()
            else:
                fields[key] = self._value(1, key)
        return fields

    def _bin(self) -> memoryview:
        """The next value, a bin, as a view into the payload (skipped, not copied)."""
        if self.offset in self._big:  # set aside by `set_aside_bins`
            big = self._big[self.offset]
            self._unpacker.skip()
            return big
        start = self.offset + _BIN_HEADER[self._tag()]
        self._unpacker.skip()
        return self._payload[start:self.offset]

    def _value(self, depth: int, key: str) -> Any:
        """The next value, built only if it is no deeper than MAX_DEPTH."""
        tag = self._tag()
        if tag in _ARRAY_TAGS or tag in _MAP_TAGS:
            if depth >= MAX_DEPTH:
                raise ProtocolError(f"'{key}' is nested deeper than PROTOCOL.md allows")
            if tag in _ARRAY_TAGS:
                n = self._count(self._unpacker.read_array_header(), f"'{key}'")
                return [self._value(depth + 1, key) for _ in range(n)]
            n = self._count(self._unpacker.read_map_header(), f"'{key}'")
            out = {}
            for _ in range(n):
                if self._tag() not in _STR_TAGS:
                    raise ProtocolError(f"'{key}' must be a map with str keys")
                name = self._unpacker.unpack()
                out[name] = self._value(depth + 1, key)
            return out
        self._built += 1
        if self.offset in self._big:  # a large bin where a scalar belongs: built as it was
            return bytes(self._bin())
        return self._unpacker.unpack()

    def _count(self, n: int, what: str) -> int:
        self._built += n
        if n > MAX_ITEMS or self._built > MAX_TOTAL_ITEMS:
            raise ProtocolError(f"{what} has too many elements ({n}; at most {MAX_ITEMS} "
                                f"per array or map, {MAX_TOTAL_ITEMS} per message)")
        return n


# --------------------------------------------------------------------------- checks


_SEP = b"\x00"
_UINT64_MAX = 2**64 - 1


def split_frame(frame: bytes) -> tuple[str, memoryview]:
    """``topic + b"\\x00" + payload`` -> (topic, payload); ProtocolError if malformed."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"a frame must be bytes, got {type_name(frame)}")
    view = memoryview(frame)
    view = view.cast("B") if view.contiguous else memoryview(bytes(view))
    sep = _find_separator(view)
    if sep < 0:
        raise ProtocolError("frame has no b'\\x00' between topic and payload")
    try:
        topic = bytes(view[:sep]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"topic is not valid UTF-8: {exc}") from None
    if not topic:
        raise ProtocolError("<empty topic>: topic must be a non-empty str")
    return topic, view[sep + 1:]


def _find_separator(view: memoryview) -> int:
    """Index of the first NUL byte in `view`, or -1; reads growing chunks, not a copy of
    the whole frame (topics are short, masks are not)."""
    start, step = 0, 256
    while start < len(view):
        found = bytes(view[start:start + step]).find(_SEP)
        if found >= 0:
            return start + found
        start, step = start + step, step * 4
    return -1


def pack_frame(topic: str, payload: dict[str, Any]) -> bytes:
    """``topic + b"\\x00" + msgpack.packb(payload, use_bin_type=True)``, byte for byte, with
    a memoryview value (a contiguous mask, cast to bytes) copied once, straight into the
    frame: packb would copy it into its growing buffer, then into the bytes, then the topic
    concatenation once more (1-5 ms for a 1080p mask, twice a frame; see
    benchmarks/encode_speed.py). Keys are str, values what packb takes."""
    packer = msgpack.Packer(use_bin_type=True)
    parts = [check_topic(topic).encode("utf-8"), _SEP, packer.pack_map_header(len(payload))]
    for key, value in payload.items():
        parts.append(packer.pack(key))
        if isinstance(value, memoryview):
            parts += [_bin_header(value.nbytes), value]
        else:
            parts.append(packer.pack(value))
    return b"".join(parts)


def _bin_header(size: int) -> bytes:
    """MessagePack's shortest bin header for `size` bytes (bin 8 / 16 / 32), as packb's."""
    if size < 2**8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 2**16:
        return b"\xc5" + size.to_bytes(2, "big")
    if size < 2**32:
        return b"\xc6" + size.to_bytes(4, "big")
    raise ProtocolError(f"a bin of {size} bytes is beyond MessagePack's 2**32 - 1")


def check_topic(topic: str) -> str:
    """A topic is a non-empty str without NUL."""
    if not isinstance(topic, str) or not topic:
        raise ProtocolError(f"topic must be a non-empty str, got {topic!r:.80}")
    if "\x00" in topic:
        raise ProtocolError(f"topic {topic!r:.80} contains a NUL character, which ends a topic")
    return topic


def check_uint(name: str, value: int) -> int:
    """An int (not bool) in 0..2**64-1."""
    if isinstance(value, bool):
        raise ProtocolError(f"{name} must be an int, got bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ProtocolError(f"{name} must be an int, got {type_name(value)}") from None
    if not 0 <= number <= _UINT64_MAX:
        raise ProtocolError(f"{name} must be in 0..2**64-1, got {number}")
    return number


def check_str(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be a str, got {type_name(value)}")
    return value


def field_of(fields: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """`fields[key]`, which must be of type `kind` (bool is not an int here)."""
    if key not in fields:
        raise ProtocolError(f"payload is missing required key '{key}'")
    value = fields[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        shown = repr(value)[:40] if isinstance(value, (str, bytes, int, float)) else "..."
        want = "/".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
        raise ProtocolError(f"'{key}' must be {want}, got {type_name(value)} "
                            f"{shown}")
    return value
