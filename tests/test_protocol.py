"""rtseg.protocol: round trips and one test per reader obligation of PROTOCOL.md."""

from __future__ import annotations

import tracemalloc

import cv2
import msgpack
import numpy as np
import pytest
import zmq

from rtseg.protocol import (
    DRIVABLE_CLASSES,
    MAX_SIDE,
    VERSION,
    MaskHeader,
    ProtocolError,
    decode,
    encode,
    subscription_prefix,
)

CLASSES = ("road", "sidewalk", "car", "person")
REQUIRED = ("v", "kind", "seq", "stamp_ns", "frame_id", "width", "height", "encoding", "data",
            "classes", "model")


def drivable_mask(height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    """(height, width) uint8 of random 0/1."""
    return np.random.default_rng(seed).integers(0, 2, (height, width), dtype=np.uint8)


def classes_mask(height: int = 6, width: int = 9) -> np.ndarray:
    """(height, width) uint8 of indices into CLASSES, with some 255 (no prediction)."""
    mask = np.random.default_rng(1).integers(0, len(CLASSES), (height, width), dtype=np.uint8)
    mask[0, :3] = 255
    return mask


def make_frame(kind: str = "drivable", mask: np.ndarray | None = None, **overrides) -> bytes:
    if mask is None:
        mask = drivable_mask() if kind == "drivable" else classes_mask()
    meta = {"seq": 7, "stamp_ns": 1_700_000_000_123_456_789, "frame_id": "camera0",
            "classes": DRIVABLE_CLASSES if kind == "drivable" else CLASSES,
            "model": "bisenet@1a2b3c4d", "latency_ms": {"total": 12.5, "infer": 4.0}}
    meta.update(overrides)
    return encode(f"cam0/{kind}", kind, mask, **meta)


def split(frame: bytes) -> tuple[bytes, dict]:
    """frame -> (topic bytes, payload map), to build malformed frames from a valid one."""
    topic, _, payload = frame.partition(b"\x00")
    return topic, msgpack.unpackb(payload, raw=False)


def join(topic: bytes, payload) -> bytes:
    return topic + b"\x00" + msgpack.packb(payload, use_bin_type=True)


def mutated(key: str, value, *, kind: str = "drivable", encoding: str = "mono8") -> bytes:
    topic, payload = split(make_frame(kind, encoding=encoding))
    payload[key] = value
    return join(topic, payload)


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("shape", [(1, 1), (1, 255), (1, 256), (255, 257), (256, 256),
                                   (3, 5000), (1080, 1920)])
def test_frames_are_byte_for_byte_what_msgpack_packs(shape):
    """encode writes the mask once, straight into the frame (bin 8, 16 and 32 headers by
    hand); the frame is still exactly topic + NUL + msgpack.packb(the map), also for a
    mask that is a strided view."""
    wide = classes_mask(shape[0], shape[1] * 2)
    for mask in (classes_mask(*shape), wide[:, ::2]):
        frame = make_frame("classes", mask)
        topic, payload = split(frame)
        assert payload["data"] == np.ascontiguousarray(mask).tobytes()
        assert frame == join(topic, payload)


@pytest.mark.parametrize("encoding", ["mono8", "bits", "png"])
def test_drivable_round_trip(encoding):
    mask = drivable_mask(48, 64)
    header, out = decode(make_frame(mask=mask, encoding=encoding))
    np.testing.assert_array_equal(out, mask)
    assert out.dtype == np.uint8 and out.shape == (48, 64)
    assert header == MaskHeader(
        topic="cam0/drivable", v=VERSION, kind="drivable", seq=7,
        stamp_ns=1_700_000_000_123_456_789, frame_id="camera0", width=64, height=48,
        encoding=encoding, classes=DRIVABLE_CLASSES, model="bisenet@1a2b3c4d",
        latency_ms={"total": 12.5, "infer": 4.0},
    )  # fmt: skip


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (1, 9), (7, 9), (8, 8), (13, 17), (2, 4)])
def test_bits_round_trip_any_size(shape):
    mask = drivable_mask(*shape, seed=shape[0] * 31 + shape[1])
    mask.flat[-1] = 1  # the last pixel sits in the padded byte
    frame = make_frame(mask=mask, encoding="bits")
    assert len(split(frame)[1]["data"]) == -(-mask.size // 8)
    np.testing.assert_array_equal(decode(frame)[1], mask)


def test_bits_are_big_endian_row_major():
    mask = np.zeros((2, 5), np.uint8)
    mask[0, 0] = mask[1, 2] = 1  # pixel indices 0 and 7
    assert split(make_frame(mask=mask, encoding="bits"))[1]["data"] == bytes([0b10000001, 0])


@pytest.mark.parametrize("encoding", ["mono8", "png"])
def test_classes_round_trip(encoding):
    mask = classes_mask(30, 41)
    header, out = decode(make_frame("classes", mask, encoding=encoding))
    np.testing.assert_array_equal(out, mask)
    assert header.kind == "classes" and header.classes == CLASSES
    assert (header.width, header.height, header.encoding) == (41, 30, encoding)


def test_png_data_is_a_plain_png():
    mask = classes_mask(10, 12)
    data = split(make_frame("classes", mask, encoding="png"))[1]["data"]
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1), mask)


def test_latency_optional_and_decoded_mask_writable():
    header, mask = decode(make_frame(latency_ms=None))
    assert "latency_ms" not in split(make_frame(latency_ms=None))[1]
    assert header.latency_ms == {}
    mask[0, 0] = 1  # a writable copy, not a view of the frame


# ---------------------------------------------------------------------- reader obligations


@pytest.mark.parametrize("frame", [b"cam0/drivable", b"", b"\x81\xa1v\x01"])
def test_frame_without_nul_rejected(frame):
    with pytest.raises(ProtocolError, match="no b'\\\\x00'"):
        decode(frame)


@pytest.mark.parametrize("payload", [[1, 2, 3], 42, "drivable", None, b"bytes"])
def test_payload_not_a_map_rejected(payload):
    with pytest.raises(ProtocolError, match="must be a MessagePack map"):
        decode(join(b"cam0/drivable", payload))


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x85\xa1v", b"\x81\xa1v\x01\x00garbage"],
                         ids=["empty", "never-used-byte", "truncated", "trailing-bytes"])
def test_payload_not_msgpack_rejected(payload):
    with pytest.raises(ProtocolError, match="not valid MessagePack"):
        decode(b"cam0/drivable\x00" + payload)


def test_topic_not_utf8_rejected():
    with pytest.raises(ProtocolError, match="UTF-8"):
        decode(b"cam\xff" + make_frame().partition(b"drivable")[2])


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_key_rejected(key):
    topic, payload = split(make_frame())
    del payload[key]
    expected = "no 'v'" if key == "v" else f"missing required key.*'{key}'"
    with pytest.raises(ProtocolError, match=expected):
        decode(join(topic, payload))


@pytest.mark.parametrize(
    ("key", "value"),
    [("v", "1"), ("v", True), ("v", 1.0), ("kind", 1), ("kind", "lanes"), ("seq", "7"),
     ("seq", -1), ("seq", 7.0), ("seq", True), ("stamp_ns", 1.5), ("stamp_ns", -5),
     ("frame_id", 3), ("frame_id", b"camera0"), ("width", "7"), ("height", None),
     ("width", 7.0), ("encoding", 1), ("encoding", "jpeg"), ("data", "text"),
     ("data", [0] * 35), ("classes", "not_drivable,drivable"), ("classes", [0, 1]),
     ("classes", {"0": "not_drivable"}), ("model", None), ("latency_ms", [12.5]),
     ("latency_ms", None), ("latency_ms", {"total": "12"}), ("latency_ms", {"total": True}),
     ("latency_ms", {"infer": 3.0}), ("latency_ms", {1: 3.0, "total": 4.0})],
)  # fmt: skip
def test_wrong_type_rejected(key, value):
    with pytest.raises(ProtocolError, match=key if key != "v" else "'v' must be an int"):
        decode(mutated(key, value))


@pytest.mark.parametrize("version", [0, 2, 100])
def test_unknown_version_rejected(version):
    topic, payload = split(make_frame())
    payload = {"v": version, "something": "else"}  # a future version may change every key
    with pytest.raises(ProtocolError, match=f"unsupported protocol version v={version}"):
        decode(join(topic, payload))


@pytest.mark.parametrize(
    ("encoding", "size"),
    [("mono8", 34), ("mono8", 36), ("mono8", 0), ("bits", 4), ("bits", 6), ("bits", 35)],
)
def test_data_length_mismatch_rejected(encoding, size):  # mask is 5 x 7 = 35 pixels
    with pytest.raises(ProtocolError, match=f"'data' has {size} bytes"):
        decode(mutated("data", bytes(size), encoding=encoding))


def _png_of(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


@pytest.mark.parametrize(
    ("data", "match"),
    [(_png_of(drivable_mask())[:-20], "broken or truncated PNG"),
     (_png_of(drivable_mask())[:20], "not a PNG"),
     (b"\x89PNG not really" * 4, "not a PNG"),
     (_png_of(drivable_mask(7, 5)), "PNG is 5x7 but width x height says 7x5"),
     (_png_of(drivable_mask(6, 7)), "PNG is 7x6"),
     (_png_of(np.dstack([drivable_mask()] * 3)), "colour type 2"),
     (_png_of(drivable_mask().astype(np.uint16)), "bit depth 16")],
    ids=["truncated", "too-short", "no-signature", "transposed", "other-height", "rgb", "16-bit"],
)  # fmt: skip
def test_png_data_mismatch_rejected(data, match):
    with pytest.raises(ProtocolError, match=match):
        decode(mutated("data", data, encoding="png"))


@pytest.mark.parametrize(
    ("encoding", "width", "height", "nbytes"),
    [("mono8", MAX_SIDE + 1, 1, 64), ("mono8", 1, MAX_SIDE + 1, 64),
     ("mono8", 10**6, 10**6, 64), ("mono8", 2**40, 2**40, 64),
     ("bits", MAX_SIDE + 1, MAX_SIDE, -(-(MAX_SIDE + 1) * MAX_SIDE // 8))],  # honest length
)  # fmt: skip
def test_size_beyond_default_limit_rejected_without_allocating(encoding, width, height, nbytes):
    topic, payload = split(make_frame(encoding=encoding))
    payload.update(width=width, height=height, data=bytes(nbytes))
    frame = join(topic, payload)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match=f"{width}x{height} exceeds the limit"):
            decode(frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # unpacking may copy `data` once; decoding the mask would need width * height bytes
    assert peak < 2 * len(frame) + 1_000_000, f"decode allocated {peak} bytes for a bad frame"


@pytest.mark.parametrize("encoding", ["mono8", "bits", "png"])
def test_size_limit_is_configurable(encoding):
    frame = make_frame(mask=drivable_mask(20, 30), encoding=encoding)
    assert decode(frame, max_width=30, max_height=20)[0].width == 30
    with pytest.raises(ProtocolError, match="30x20 exceeds the limit 29x20"):
        decode(frame, max_width=29, max_height=20)
    with pytest.raises(ProtocolError, match="exceeds the limit 30x19"):
        decode(frame, max_width=30, max_height=19)


@pytest.mark.parametrize(("width", "height"), [(0, 5), (7, 0), (-7, 5)])
def test_non_positive_size_rejected(width, height):
    topic, payload = split(make_frame())
    payload.update(width=width, height=height)
    with pytest.raises(ProtocolError, match="not positive|must be in 0"):
        decode(join(topic, payload))


def test_unknown_extra_keys_ignored():
    mask = drivable_mask()
    topic, payload = split(make_frame(mask=mask))
    payload.update({"future": {"nested": [1, 2, {3: b"x"}]}, "zz": None, 17: "int key"})
    header, out = decode(join(topic, payload))
    np.testing.assert_array_equal(out, mask)
    assert header.seq == 7


def test_255_allowed_in_classes_mask():
    mask = np.full((4, 4), 255, np.uint8)
    mask[0, 0] = len(CLASSES) - 1
    np.testing.assert_array_equal(decode(make_frame("classes", mask))[1], mask)


@pytest.mark.parametrize("value", [len(CLASSES), 254])
def test_class_value_without_name_rejected(value):
    mask = classes_mask()
    mask[2, 2] = value
    with pytest.raises(ProtocolError, match=f"class value {value} has no name"):
        make_frame("classes", mask)
    topic, payload = split(make_frame("classes", classes_mask()))
    payload["data"] = mask.tobytes()
    with pytest.raises(ProtocolError, match=f"class value {value} has no name"):
        decode(join(topic, payload))


@pytest.mark.parametrize("value", [2, 255])
def test_drivable_values_only_0_and_1(value):
    mask = drivable_mask()
    mask[1, 1] = value
    with pytest.raises(ProtocolError, match=f"only 0 and 1, found value {value}"):
        make_frame(mask=mask)
    with pytest.raises(ProtocolError, match=f"only 0 and 1, found value {value}"):
        decode(mutated("data", mask.tobytes()))


@pytest.mark.parametrize("classes", [["drivable", "not_drivable"], ["not_drivable"],
                                     ["not_drivable", "drivable", "sky"], ["road", "drivable"]])
def test_drivable_classes_exactly_as_specified(classes):
    with pytest.raises(ProtocolError, match="drivable classes must be exactly"):
        decode(mutated("classes", classes))
    with pytest.raises(ProtocolError, match="drivable classes must be exactly"):
        make_frame(classes=classes)


def test_bits_only_for_drivable():
    with pytest.raises(ProtocolError, match="'bits' is for drivable masks only"):
        make_frame("classes", encoding="bits")
    topic, payload = split(make_frame("classes"))
    payload["encoding"] = "bits"
    with pytest.raises(ProtocolError, match="'bits' is for drivable masks only"):
        decode(join(topic, payload))


def test_error_names_the_topic():
    with pytest.raises(ProtocolError, match=r"^cam0/drivable: payload is missing"):
        decode(join(b"cam0/drivable", {"v": 1}))


# ------------------------------------------------------------------------- encode checks


@pytest.mark.parametrize(
    ("args", "match"),
    [({"topic": "cam0\x00/drivable"}, "NUL"), ({"topic": ""}, "non-empty"),
     ({"kind": "lanes"}, "kind must be one of"), ({"encoding": "jpeg"}, "encoding must be"),
     ({"mask": drivable_mask().astype(bool)}, "uint8"),
     ({"mask": drivable_mask()[None]}, r"\(H, W\) uint8"),
     ({"mask": np.zeros((0, 4), np.uint8)}, "outside 1..8192"),
     ({"seq": -1}, "seq must be in"), ({"seq": 1.0}, "seq must be an int"),
     ({"stamp_ns": "now"}, "stamp_ns must be an int"), ({"frame_id": None}, "frame_id"),
     ({"model": 3}, "model must be a str"), ({"classes": "road"}, "sequence of str"),
     ({"latency_ms": {"infer": 1.0}}, "must contain 'total'"),
     ({"latency_ms": {"total": float("nan")}}, "finite durations"),
     ({"latency_ms": {"total": -1.0}}, "finite durations")],
)  # fmt: skip
def test_encode_rejects_bad_arguments(args, match):
    call = {"topic": "cam0/drivable", "kind": "drivable", "mask": drivable_mask(), "seq": 0,
            "stamp_ns": 0, "frame_id": "f", "classes": DRIVABLE_CLASSES, "model": "m"}
    call.update(args)
    with pytest.raises(ProtocolError, match=match):
        encode(call.pop("topic"), call.pop("kind"), call.pop("mask"), **call)


def test_encode_accepts_numpy_integers_and_views():
    mask = drivable_mask(10, 20)[:, ::2]  # not contiguous
    frame = encode("t", "drivable", mask, seq=np.int64(3), stamp_ns=np.uint64(2**63),
                   frame_id="f", classes=list(DRIVABLE_CLASSES), model="m",
                   latency_ms={"total": np.float32(1.5)})
    header, out = decode(frame)
    np.testing.assert_array_equal(out, mask)
    assert (header.seq, header.stamp_ns, header.latency_ms) == (3, 2**63, {"total": 1.5})


# ------------------------------------------------------------------------ subscriptions


def test_subscription_prefix_is_topic_and_nul():
    assert subscription_prefix("cam0/drivable") == b"cam0/drivable\x00"
    with pytest.raises(ProtocolError, match="NUL"):
        subscription_prefix("a\x00b")


@pytest.mark.timeout(10)
def test_subscription_does_not_match_longer_topic():
    ctx = zmq.Context.instance()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    try:
        for sock in (pub, sub):
            sock.setsockopt(zmq.LINGER, 0)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub.setsockopt(zmq.SUBSCRIBE, subscription_prefix("cam0/drivable"))
        sub.setsockopt(zmq.RCVTIMEO, 50)
        sub.connect(f"tcp://127.0.0.1:{port}")
        longer, exact = make_frame(), make_frame()
        longer = longer.replace(b"cam0/drivable\x00", b"cam0/drivable2\x00", 1)
        received = []
        for _ in range(100):  # until the subscription has reached the publisher
            pub.send(longer)
            pub.send(exact)
            try:
                received.append(sub.recv())
                break
            except zmq.Again:
                continue
        assert received, "no message at all: subscription never reached the publisher"
        for _ in range(5):
            pub.send(longer)
            pub.send(exact)
        while True:
            try:
                received.append(sub.recv())
            except zmq.Again:
                break
        topics = {decode(frame)[0].topic for frame in received}
        assert topics == {"cam0/drivable"}
        assert len(received) == 6
    finally:
        pub.close()
        sub.close()
