"""The spec-only reader (tests/protocol_reader.py) against rtseg.protocol, both ways."""

from __future__ import annotations

import struct
import threading
import zlib

import msgpack
import numpy as np
import pytest

from rtseg.protocol import DRIVABLE_CLASSES, ProtocolError, decode, encode
from rtseg.stream.publisher import MaskPublisher
from tests.protocol_reader import SpecViolation, check_stream, collect, read_frame

CLASSES = [f"class{i}" for i in range(19)]


def frame_of(kind: str, mask: np.ndarray, encoding: str, latency=None, seq: int = 3) -> bytes:
    classes = DRIVABLE_CLASSES if kind == "drivable" else CLASSES
    return encode(f"node/{kind}", kind, mask, seq=seq, stamp_ns=1_700_000_000_000_000_000,
                  frame_id="video.mp4", classes=classes, model="m@abc", encoding=encoding,
                  latency_ms=latency)


def image(kind: str, height: int, width: int) -> np.ndarray:
    """(height, width) uint8: smooth gradients plus noise, so PNG uses several filters."""
    rng = np.random.default_rng(height * 1000 + width)
    top = 2 if kind == "drivable" else len(CLASSES)
    ramp = (np.add.outer(np.arange(height), np.arange(width)) // 5) % top
    noise = rng.integers(0, top, (height, width))
    mask = np.where(rng.random((height, width)) < 0.2, noise, ramp).astype(np.uint8)
    if kind == "classes":
        mask[0, 0] = 255
    return mask


CASES = [(kind, enc, shape) for kind, encs in (("drivable", ("mono8", "bits", "png")),
                                                ("classes", ("mono8", "png")))
         for enc in encs for shape in ((1, 1), (3, 5), (37, 61), (120, 160))]


@pytest.mark.parametrize(("kind", "encoding", "shape"), CASES)
@pytest.mark.parametrize("latency", [None, {"total": 9.5, "infer": 3.25}])
def test_reader_accepts_every_encoding(kind, encoding, shape, latency):
    mask = image(kind, *shape)
    topic, payload, out = read_frame(frame_of(kind, mask, encoding, latency))
    np.testing.assert_array_equal(out, mask)
    assert topic == f"node/{kind}"
    assert (payload["width"], payload["height"], payload["encoding"]) == (shape[1], shape[0],
                                                                          encoding)
    assert payload.get("latency_ms") == latency


def handmade_png(mask: np.ndarray) -> bytes:
    """A grayscale PNG of (H, W) uint8 using filter type y % 5 on row y."""
    height, width = mask.shape
    rows, prev = [], np.zeros(width, np.int64)
    for y in range(height):
        cur = mask[y].astype(np.int64)
        left = np.concatenate([[0], cur[:-1]])
        up_left = np.concatenate([[0], prev[:-1]])
        p = left + prev - up_left
        pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        predictor = [0, left, prev, (left + prev) // 2, paeth][y % 5]
        rows.append(bytes([y % 5]) + ((cur - predictor) % 256).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind +
                                                                                          body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def with_payload(frame: bytes, **changes) -> bytes:
    topic, _, raw = frame.partition(b"\x00")
    payload = msgpack.unpackb(raw, raw=False)
    payload.update(changes)
    for key in [k for k, v in changes.items() if v is ...]:
        del payload[key]
    return topic + b"\x00" + msgpack.packb(payload, use_bin_type=True)


def test_all_png_filter_types_decode_the_same_in_both_readers():
    mask = image("classes", 23, 31)
    frame = with_payload(frame_of("classes", mask, "png"), data=handmade_png(mask))
    np.testing.assert_array_equal(read_frame(frame)[2], mask)
    np.testing.assert_array_equal(decode(frame)[1], mask)


def _malformed() -> dict[str, bytes]:
    good = frame_of("drivable", image("drivable", 5, 7), "mono8", {"total": 1.0})
    png = frame_of("drivable", image("drivable", 5, 7), "png")
    bits = frame_of("drivable", image("drivable", 5, 7), "bits")
    return {
        "no-nul": b"node/drivable",
        "not-msgpack": b"node/drivable\x00\xc1",
        "trailing-bytes": good + b"\x00",
        "not-a-map": b"node/drivable\x00" + msgpack.packb([1, 2]),
        "bad-utf8-topic": b"\xffnode\x00" + good.partition(b"\x00")[2],
        **{f"missing-{key}": with_payload(good, **{key: ...})
           for key in ("v", "kind", "seq", "stamp_ns", "frame_id", "width", "height",
                       "encoding", "data", "classes", "model")},
        "v-str": with_payload(good, v="1"),
        "v-2": with_payload(good, v=2),
        "kind-unknown": with_payload(good, kind="lanes"),
        "seq-negative": with_payload(good, seq=-1),
        "seq-float": with_payload(good, seq=3.0),
        "stamp-str": with_payload(good, stamp_ns="now"),
        "frame-id-int": with_payload(good, frame_id=1),
        "width-float": with_payload(good, width=7.0),
        "encoding-jpeg": with_payload(good, encoding="jpeg"),
        "data-str": with_payload(good, data="x" * 35),
        "model-none": with_payload(good, model=None),
        "classes-str": with_payload(good, classes="drivable"),
        "classes-swapped": with_payload(good, classes=["drivable", "not_drivable"]),
        "latency-list": with_payload(good, latency_ms=[1.0]),
        "latency-no-total": with_payload(good, latency_ms={"infer": 1.0}),
        "mono8-short": with_payload(good, data=bytes(34)),
        "bits-long": with_payload(bits, data=bytes(6)),
        "png-truncated": with_payload(png, data=msgpack.unpackb(png.partition(b"\x00")[2])["data"]
                                      [:-16]),
        "png-wrong-size": with_payload(png, width=5, height=7),
        "too-wide": with_payload(good, width=8193, data=bytes(8193 * 5)),
        "drivable-value-2": with_payload(good, data=bytes([2]) * 35),
        "bits-for-classes": with_payload(bits, kind="classes", classes=CLASSES),
        "class-without-name": with_payload(good, kind="classes", classes=["a", "b"],
                                           data=bytes([5]) * 35),
    }  # fmt: skip


MALFORMED = _malformed()


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_both_readers_reject_malformed_frames(name):
    with pytest.raises(SpecViolation):
        read_frame(MALFORMED[name])
    with pytest.raises(ProtocolError):
        decode(MALFORMED[name])


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"latency_ms": {"total": 3}}, "not a float"), ({"latency_ms": {"total": -1.0}}, "duration"),
     ({"latency_ms": {"total": float("nan")}}, "duration")],
)
def test_reader_is_strict_about_latency(changes, match):
    frame = with_payload(frame_of("drivable", image("drivable", 5, 7), "bits"), **changes)
    with pytest.raises(SpecViolation, match=match):
        read_frame(frame)


def test_reader_rejects_corrupt_png_crc():
    mask = image("drivable", 9, 11)
    png = bytearray(handmade_png(mask))
    png[30] ^= 0xFF  # inside the IHDR CRC
    with pytest.raises(SpecViolation, match="bad CRC"):
        read_frame(with_payload(frame_of("drivable", mask, "png"), data=bytes(png)))


def test_reader_size_limit_is_configurable():
    frame = frame_of("drivable", image("drivable", 5, 7), "bits")
    assert read_frame(frame, max_width=7, max_height=5)[1]["width"] == 7
    with pytest.raises(SpecViolation, match="beyond the limit 6x5"):
        read_frame(frame, max_width=6, max_height=5)


@pytest.mark.timeout(10)
def test_reader_checks_a_live_publisher():
    stop = threading.Event()
    with MaskPublisher("tcp://127.0.0.1:*") as pub:

        def loop() -> None:
            seq = 0
            while not stop.is_set():
                for kind, enc in (("drivable", "bits"), ("classes", "png")):
                    pub.send_frame(frame_of(kind, image(kind, 24, 32), enc, {"total": 1.0}, seq))
                seq += 1
                stop.wait(0.005)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            frames = collect(pub.endpoint, ["node/drivable", "node/classes"], 10, 5000)
        finally:
            stop.set()
            thread.join(5)
    counts = check_stream(frames, ["node/drivable", "node/classes"])
    assert sum(counts.values()) == 10 and all(counts.values())


def test_check_stream_rejects_falling_seq():
    frames = [frame_of("drivable", image("drivable", 2, 2), "mono8", seq=s) for s in (4, 4)]
    with pytest.raises(SpecViolation, match="seq 4 not rising"):
        check_stream(frames, ["node/drivable"])
    with pytest.raises(SpecViolation, match="subscribed to"):
        check_stream(frames[:1], ["node/classes"])
