"""A strict reader of the rtseg mask protocol, written from PROTOCOL.md alone.

It imports nothing from rtseg, on purpose: it is the "subscriber in any language" of the
spec, here in Python, and checks a node's frames against the page rather than against the
project's own decoder. PNG masks are decoded with zlib (OpenCV only for interlaced PNGs).

    python tests/protocol_reader.py tcp://127.0.0.1:5555 demo/drivable demo/classes -n 20
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import zlib
from typing import Any

import msgpack
import numpy as np
import zmq

LIMIT = 8192
REQUIRED = {
    "v": int, "kind": str, "seq": int, "stamp_ns": int, "frame_id": str, "width": int,
    "height": int, "encoding": str, "data": bytes, "classes": list, "model": str,
}  # fmt: skip
DRIVABLE = ["not_drivable", "drivable"]
NO_PREDICTION = 255


class SpecViolation(AssertionError):
    """A frame that breaks PROTOCOL.md; the message says which rule."""


def need(condition: bool, message: str) -> None:
    if not condition:
        raise SpecViolation(message)


def read_frame(
    frame: bytes, *, max_width: int = LIMIT, max_height: int = LIMIT
) -> tuple[str, dict[str, Any], np.ndarray]:
    """Check one ZeroMQ frame against every rule of the spec.

    Returns (topic, payload map, mask ``(height, width) uint8``); raises SpecViolation.
    """
    need(isinstance(frame, bytes), f"frame is {type(frame).__name__}, not bytes")
    need(b"\x00" in frame, "frame has no \\x00 after the topic")
    raw_topic, _, raw_payload = frame.partition(b"\x00")
    try:
        topic = raw_topic.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecViolation(f"topic is not UTF-8: {exc}") from None
    need(topic != "", "topic is empty")
    payload = unpack_payload(raw_payload)
    check_fields(payload, max_width, max_height)
    mask = decode_mask(payload)
    check_values(payload, mask)
    return topic, payload, mask


def unpack_payload(raw: bytes) -> dict[Any, Any]:
    try:
        payload = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:  # any failure to parse is the violation
        raise SpecViolation(f"payload is not one MessagePack object: {exc!r}") from None
    need(isinstance(payload, dict), f"payload is a {type(payload).__name__}, not a map")
    need("v" in payload, "payload has no 'v'")
    need(type(payload["v"]) is int, f"'v' is {payload['v']!r}, not an int")
    need(payload["v"] == 1, f"unknown protocol version v={payload['v']}")
    return payload


def check_fields(p: dict[Any, Any], max_width: int, max_height: int) -> None:
    for key, kind in REQUIRED.items():
        need(key in p, f"missing key {key!r}")
        need(type(p[key]) is kind, f"{key!r} is {type(p[key]).__name__}, not {kind.__name__}")
    need(p["kind"] in ("drivable", "classes"), f"unknown kind {p['kind']!r}")
    need(p["seq"] >= 0, f"seq {p['seq']} is negative")
    need(p["stamp_ns"] >= 0, f"stamp_ns {p['stamp_ns']} is negative")
    need(p["width"] >= 1 and p["height"] >= 1, f"size {p['width']}x{p['height']} not positive")
    need(p["width"] <= max_width and p["height"] <= max_height,
         f"size {p['width']}x{p['height']} beyond the limit {max_width}x{max_height}")
    need(p["encoding"] in ("mono8", "bits", "png"), f"unknown encoding {p['encoding']!r}")
    need(p["encoding"] != "bits" or p["kind"] == "drivable", "'bits' used for a classes mask")
    need(all(type(name) is str for name in p["classes"]), "classes are not all str")
    need(p["kind"] != "drivable" or p["classes"] == DRIVABLE,
         f"drivable classes are {p['classes']}, not {DRIVABLE}")
    need(len(p["classes"]) >= 1, "classes is empty")
    if "latency_ms" in p:
        check_latency(p["latency_ms"])


def check_latency(latency: Any) -> None:
    need(type(latency) is dict, f"latency_ms is {type(latency).__name__}, not a map")
    for stage, ms in latency.items():
        need(type(stage) is str, f"latency_ms key {stage!r} is not str")
        need(type(ms) is float, f"latency_ms[{stage!r}] = {ms!r} is not a float")
        need(math.isfinite(ms) and ms >= 0, f"latency_ms[{stage!r}] = {ms} is not a duration")
    need("total" in latency, "latency_ms has no 'total'")


def decode_mask(p: dict[Any, Any]) -> np.ndarray:
    width, height, data = p["width"], p["height"], p["data"]
    if p["encoding"] == "mono8":
        need(len(data) == width * height,
             f"mono8 data is {len(data)} bytes, expected {width * height}")
        return np.frombuffer(data, np.uint8).reshape(height, width)
    if p["encoding"] == "bits":
        expected = -(-width * height // 8)
        need(len(data) == expected, f"bits data is {len(data)} bytes, expected {expected}")
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="big")
        return bits[: width * height].reshape(height, width)
    return decode_png(data, width, height)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, CRCs checked, up to and including IEND."""
    need(data[:8] == b"\x89PNG\r\n\x1a\n", "png data has no PNG signature")
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        need(pos + 12 + length <= len(data), f"png chunk {kind!r} is truncated")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        need(zlib.crc32(kind + body) == crc, f"png chunk {kind!r} has a bad CRC")
        chunks.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            return chunks
    raise SpecViolation("png data ends before its IEND chunk")


def decode_png(data: bytes, width: int, height: int) -> np.ndarray:
    chunks = png_chunks(data)
    need(chunks[0][0] == b"IHDR" and len(chunks[0][1]) == 13, "png does not start with IHDR")
    w, h, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    need((w, h) == (width, height), f"png is {w}x{h}, header says {width}x{height}")
    need((depth, color) == (8, 0), f"png is depth {depth} colour type {color}, not 8-bit gray")
    need((compression, filtering) == (0, 0), "png uses an unknown compression/filter method")
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    if interlace:
        import cv2

        mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        need(mask is not None and mask.shape == (height, width), "interlaced png is broken")
        return mask
    expected = height * (width + 1)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(idat, expected + 1)  # bounded: no zip bomb
    except zlib.error as exc:
        raise SpecViolation(f"png IDAT does not inflate: {exc}") from None
    need(len(raw) == expected and inflater.eof, "png image data has the wrong length")
    return unfilter(raw, width, height)


def unfilter(raw: bytes, width: int, height: int) -> np.ndarray:
    """Undo PNG scanline filters (1 byte per pixel) -> ``(height, width) uint8``."""
    out = np.zeros((height, width), np.uint8)
    prev = np.zeros(width, np.uint8)
    for y in range(height):
        kind = raw[y * (width + 1)]
        line = np.frombuffer(raw, np.uint8, width, y * (width + 1) + 1)
        if kind == 0:
            row = line.copy()
        elif kind == 1:
            row = np.cumsum(line, dtype=np.uint64).astype(np.uint8)
        elif kind == 2:
            row = line + prev
        elif kind in (3, 4):
            row = np.array(_sequential_row(kind, line.tolist(), prev.tolist()), np.uint8)
        else:
            raise SpecViolation(f"png row {y} has unknown filter type {kind}")
        out[y] = prev = row
    return out


def _sequential_row(kind: int, line: list[int], up: list[int]) -> list[int]:
    row, left, up_left = [], 0, 0
    for x, value in enumerate(line):
        above = up[x]
        if kind == 3:
            value += (left + above) >> 1
        else:
            p = left + above - up_left
            pa, pb, pc = abs(p - left), abs(p - above), abs(p - up_left)
            value += left if pa <= pb and pa <= pc else above if pb <= pc else up_left
        left, up_left = value & 0xFF, above
        row.append(left)
    return row


def check_values(p: dict[Any, Any], mask: np.ndarray) -> None:
    values = np.unique(mask)
    if p["kind"] == "drivable":
        need(set(values.tolist()) <= {0, 1}, f"drivable mask holds {values.tolist()}")
    else:
        bad = [v for v in values.tolist() if v >= len(p["classes"]) and v != NO_PREDICTION]
        need(not bad, f"class values {bad} have no name among {len(p['classes'])} classes")


def collect(endpoint: str, topics: list[str], count: int, timeout_ms: int = 5000) -> list[bytes]:
    """Receive `count` raw frames on exact `topics` from a running node."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8") + b"\x00")
    sock.connect(endpoint)
    try:
        return [sock.recv() for _ in range(count)]
    finally:
        sock.close()


def check_stream(frames: list[bytes], topics: list[str]) -> dict[str, int]:
    """Check every frame, that each comes from a subscribed topic and that seq rises."""
    last: dict[str, int] = {}
    for frame in frames:
        topic, payload, _ = read_frame(frame)
        need(topic in topics, f"received topic {topic!r}, subscribed to {topics}")
        need(payload["seq"] > last.get(topic, -1), f"{topic}: seq {payload['seq']} not rising")
        last[topic] = payload["seq"]
    return {topic: sum(1 for f in frames if f.startswith(topic.encode() + b"\x00"))
            for topic in topics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a running node against PROTOCOL.md")
    parser.add_argument("endpoint")
    parser.add_argument("topics", nargs="+")
    parser.add_argument("-n", "--count", type=int, default=20)
    parser.add_argument("--timeout-ms", type=int, default=5000)
    args = parser.parse_args(argv)
    frames = collect(args.endpoint, args.topics, args.count, args.timeout_ms)
    print(f"{len(frames)} frames follow PROTOCOL.md: {check_stream(frames, args.topics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
