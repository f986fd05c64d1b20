"""Where the values of a MessagePack map lie, found without building them: the layer
below `rtseg.wire`'s reader, which uses it to keep a mask's bytes out of msgpack's buffer.

Only lengths are read here (the type byte and its length prefix, per the MessagePack
spec); values are built, and limited, by msgpack's Unpacker in `rtseg.wire`.
"""

from __future__ import annotations

SET_ASIDE_BYTES = 64 * 1024  # payloads from this size on have their large bins set aside
_SET_ASIDE_MIN = 4096  # bytes of a top-level bin worth setting aside
_EMPTY_BIN = b"\xc4\x00"
_WALK_BUDGET = 4096  # objects the walk visits before it leaves a payload alone
_FIXED_SIZE = {
    0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9,
    0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9, 0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18,
}  # fmt: skip  (nil, bools, floats, ints, fixext: type byte included)
_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin / str: length bytes
BIN_HEADER = {tag: 1 + _SIZED[tag] for tag in (0xC4, 0xC5, 0xC6)}  # bin: type + length bytes
_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}  # ext 8/16/32: length bytes, then a type byte
_COUNTED = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # array/map 16/32


def set_aside_bins(payload: memoryview, max_bin: int
                   ) -> tuple[bytes | memoryview, dict[int, memoryview]]:
    """`payload` with each large bin value of its top-level map (a mask's `data`) replaced
    by an empty bin, and those bins as views into `payload`, by their stand-in's offset.

    msgpack's Unpacker copies everything it is fed into a buffer of its own: a 1080p mask
    would be copied, into freshly faulted pages, by each of the reader's two passes. The
    stand-ins keep the map's keys and order, so the passes read what they read before. A
    payload under `SET_ASIDE_BYTES`, not a map, or one the walk cannot follow within
    `_WALK_BUDGET` objects is returned as it is, for the Unpacker to read or to name what
    is wrong; a bin over `max_bin` stays in place for the Unpacker to refuse.
    """
    if len(payload) < SET_ASIDE_BYTES:
        return payload, {}
    try:
        spans = _large_top_level_bins(payload, max_bin)
    except (IndexError, ValueError):
        return payload, {}
    if not spans:
        return payload, {}
    parts: list = []
    big: dict[int, memoryview] = {}
    start = size = 0
    for first, data, end in spans:
        parts.append(payload[start:first])
        size += first - start
        big[size] = payload[data:end]
        parts.append(_EMPTY_BIN)
        size += len(_EMPTY_BIN)
        start = end
    parts.append(payload[start:])
    return b"".join(parts), big


def _large_top_level_bins(payload: memoryview, max_bin: int) -> list[tuple[int, int, int]]:
    """(start, data start, end) of each top-level map value that is a bin of
    `_SET_ASIDE_MIN`..`max_bin` bytes."""
    tag = payload[0]
    if 0x80 <= tag <= 0x8F:
        count, offset = tag & 0x0F, 1
    elif tag in (0xDE, 0xDF):
        width = _COUNTED[tag][0]
        count, offset = int.from_bytes(payload[1:1 + width], "big"), 1 + width
    else:
        raise ValueError("not a map")
    if 2 * count > _WALK_BUDGET:
        raise ValueError("too many entries to walk")
    spans, budget = [], _WALK_BUDGET
    for index in range(2 * count):
        end, budget = _object_end(payload, offset, budget)
        head = BIN_HEADER.get(payload[offset])
        if index % 2 and head and _SET_ASIDE_MIN <= end - offset - head <= max_bin:
            spans.append((offset, offset + head, end))
        offset = end
    return spans


def _object_end(view: memoryview, offset: int, budget: int) -> tuple[int, int]:
    """The offset just past the MessagePack object at `offset`, and `budget` less the
    objects nested in it; IndexError where the view ends first, ValueError for 0xc1 or
    once the budget is spent."""
    pending = 1
    while pending:
        pending, budget = pending - 1, budget - 1
        if budget < 0:
            raise ValueError("too many objects to walk")
        tag = view[offset]
        if tag < 0x80 or tag >= 0xE0:  # positive / negative fixint
            offset += 1
        elif tag < 0xA0:  # fixmap / fixarray
            pending += (tag & 0x0F) * (2 if tag < 0x90 else 1)
            offset += 1
        elif tag < 0xC0:  # fixstr
            offset += 1 + (tag & 0x1F)
        elif tag in _FIXED_SIZE:
            offset += _FIXED_SIZE[tag]
        elif tag in _SIZED or tag in _EXT:
            width = _SIZED.get(tag) or _EXT[tag]
            length = int.from_bytes(view[offset + 1:offset + 1 + width], "big")
            offset += 1 + width + length + (tag in _EXT)
        elif tag in _COUNTED:
            width, per = _COUNTED[tag]
            pending += per * int.from_bytes(view[offset + 1:offset + 1 + width], "big")
            offset += 1 + width
        else:
            raise ValueError(f"type byte 0x{tag:02x} is never used")
        if pending > budget:
            raise ValueError("too many objects to walk")
    if offset > len(view):
        raise IndexError("the payload ends inside an object")
    return offset, budget
