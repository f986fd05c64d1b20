"""Seeded generator of hostile frames for the protocol readers (tests and benchmarks).

`cases(seed)` yields frames, most of them malformed, some valid, in a mix of families:
random bytes; valid frames of every kind with flipped / inserted / deleted bytes or cut
short; valid payloads with one key's value replaced by something hostile (nested ~3000
deep, a length prefix claiming gigabytes, a wrong type, an out-of-range int, an ext type);
and frames whose sizes claim more than the limit. Written as raw MessagePack where
msgpack-python itself could not pack it (nesting beyond its recursion limit).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

import msgpack
import numpy as np

from rtseg.protocol import DRIVABLE_CLASSES, SourceStatus, encode, encode_image, encode_status

KEYS = ("v", "kind", "seq", "stamp_ns", "frame_id", "width", "height", "encoding", "data",
        "classes", "model", "latency_ms", "node", "state", "sources", "extra")


def _jpeg() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return buf.tobytes()


def valid_frames(size: tuple[int, int] = (12, 20)) -> list[bytes]:
    """One valid frame of each kind and encoding, masks of `size` (small by default)."""
    rng = np.random.default_rng(0)
    drivable = (rng.random(size) > 0.5).astype(np.uint8)
    classes = rng.integers(0, 4, size, dtype=np.uint8)
    meta = {"seq": 7, "stamp_ns": 1_700_000_000_000_000_000, "frame_id": "camera0",
            "model": "lraspp@1a2b3c4d", "latency_ms": {"total": 12.5, "infer": 4.0}}
    out = [encode("cam/drivable", "drivable", drivable, classes=DRIVABLE_CLASSES,
                  encoding=enc, **meta) for enc in ("mono8", "bits", "png")]
    out += [encode("cam/classes", "classes", classes, classes=("road", "a", "b", "c"),
                   encoding=enc, **meta) for enc in ("mono8", "png")]
    out.append(encode_image("cam/image", _jpeg(), seq=7, stamp_ns=1, frame_id="camera0",
                            width=8, height=8, model="m"))
    out.append(encode_status("cam/status", node="cam", state="running", stamp_ns=1,
                             sources=[SourceStatus("cam", "ok", 30.0, 0, 7)]))
    return out


def _deep(depth: int, leaf: bytes = b"\x01", tag: bytes = b"\x91") -> bytes:
    """Raw MessagePack: `depth` nested one-element arrays (or maps: tag b'\\x81' + key)."""
    return tag * depth + leaf


def hostile_values(rng: random.Random) -> list[bytes]:
    """Raw MessagePack values a reader must refuse or survive (each a complete value)."""
    depth = rng.choice([4, 40, 1000, 1023, 1024, 1025, 3000, 20000])
    return [
        _deep(depth),
        b"\x81\xa1k" * depth + b"\x01",  # maps nested `depth` deep
        b"\xdd\xff\xff\xff\xff",  # array32 claiming 4G elements, none present
        b"\xdf\xff\xff\xff\xff",  # map32 claiming 4G entries
        b"\xc6\xff\xff\xff\xff" + b"x" * rng.randrange(64),  # bin32 claiming 4 GB
        b"\xdb\x7f\xff\xff\xff" + b"y" * rng.randrange(64),  # str32 claiming 2 GB
        b"\xdc\x03\xe8" + b"\x90" * 1000,  # 1000 empty arrays
        b"\xdc\xff\xff" + b"\x91" * 65535 + b"\x01",  # 65535 elements, nested
        b"\xcb" + struct.pack(">d", rng.choice([float("nan"), float("inf"), -1.5, 1e300])),
        b"\xd3" + struct.pack(">q", -rng.randrange(1, 2**63)),  # negative int64
        b"\xcf" + struct.pack(">Q", 2**64 - 1),  # uint64 max
        b"\xc0", b"\xc2", b"\xc3",  # nil, false, true
        b"\xd4\x01\x02", b"\xc7\x05\x09abcde",  # ext types
        b"\xa3\xff\xfe\xfd",  # str of invalid UTF-8
        b"\xc1",  # the never-used byte
        msgpack.packb(rng.randrange(2**32)), msgpack.packb("x" * rng.randrange(200)),
        msgpack.packb(rng.randbytes(rng.randrange(100))),
    ]


def _wide(rng: random.Random) -> bytes:
    """An array of up to 2M empty arrays/maps: tiny on the wire, a Python object each
    for a reader that builds what it reads (the way a reader's memory is blown up)."""
    n = rng.choice([10**4, 10**5, 2 * 10**6])
    return b"\xdd" + struct.pack(">I", n) + rng.choice([b"\x90", b"\x80"]) * n


def _raw_map(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A map of already packed keys and values (map16 header: up to 65535 entries)."""
    return b"\xde" + struct.pack(">H", len(entries)) + b"".join(k + v for k, v in entries)


def _replace_key(frame: bytes, rng: random.Random) -> bytes:
    topic, payload = frame.split(b"\x00", 1)
    fields = msgpack.unpackb(payload, raw=False)
    entries = [(msgpack.packb(k), msgpack.packb(v, use_bin_type=True)) for k, v in
               fields.items()]
    key = rng.choice(KEYS)
    value = _wide(rng) if rng.random() < 0.02 else rng.choice(hostile_values(rng))
    entries = [(k, v) for k, v in entries if k != msgpack.packb(key)]
    entries.insert(rng.randrange(len(entries) + 1), (msgpack.packb(key), value))
    if rng.random() < 0.1:  # a non-str key, possibly itself hostile
        entries.append((rng.choice(hostile_values(rng)), b"\x01"))
    return topic + b"\x00" + _raw_map(entries)


def _mutate(frame: bytes, rng: random.Random) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data)) if data else 0
        if op == 0 and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = rng.randbytes(rng.randrange(1, 8))
        elif op == 2 and data:
            del data[pos:pos + rng.randrange(1, 8)]
        else:
            data = data[:pos]
    return bytes(data)


def _oversize(frame: bytes, rng: random.Random) -> bytes:
    """A valid frame whose width/height claim more than the limit, or disagree with data."""
    topic, payload = frame.split(b"\x00", 1)
    fields = msgpack.unpackb(payload, raw=False)
    if "width" in fields:
        fields[rng.choice(["width", "height"])] = rng.choice([0, 8193, 2**31, 2**40, 13])
    return topic + b"\x00" + msgpack.packb(fields, use_bin_type=True)


def cases(seed: int, size: tuple[int, int] = (12, 20)) -> Iterator[bytes]:
    """An endless seeded stream of frames (about 9 in 10 malformed), masks of `size`."""
    rng = random.Random(seed)
    valid = valid_frames(size)
    while True:
        family = rng.randrange(10)
        base = rng.choice(valid)
        if family == 0:
            yield rng.randbytes(rng.randrange(64))
        elif family == 1:
            yield b"cam/drivable\x00" + rng.randbytes(rng.randrange(256))
        elif family in (2, 3, 4):
            yield _replace_key(base, rng)
        elif family in (5, 6, 7):
            yield _mutate(base, rng)
        elif family == 8:
            yield _oversize(base, rng)
        else:
            yield base
