"""The wire format of PROTOCOL.md, version 1: one ZeroMQ frame per mask.

``frame = topic (UTF-8) + b"\\x00" + payload (MessagePack map)``

`encode` turns an ``(H, W) uint8`` mask and its metadata into one frame; `decode` turns a
frame back into a `MaskHeader` and an ``(H, W) uint8`` mask, and raises `ProtocolError`
for every deviation the reader obligations of PROTOCOL.md name. Sizes are checked before
any mask data is decoded, so a hostile frame cannot make the reader allocate without
bound. No torch here; OpenCV is imported only for the ``png`` encoding.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtseg.errors import type_name
from rtseg.status import (  # noqa: F401  (re-exported: the protocol's one entry point)
    STATUS_KIND,
    NodeStatus,
    SourceStatus,
    decode_status,
    encode_status,
    status_from_fields,
)
from rtseg.wire import (
    MAX_SIDE,
    VERSION,
    Limits,
    ProtocolError,
    check_str,
    check_topic,
    check_uint,
    field_of,
    pack_frame,
    read_payload,
    split_frame,
)

KINDS = ("drivable", "classes")  # the mask kinds
IMAGE_KIND = "image"
DRIVABLE_CLASSES = ("not_drivable", "drivable")
ENCODINGS = ("mono8", "bits", "png")
IMAGE_ENCODING = "jpeg"
NO_PREDICTION = 255  # value of a pixel without prediction in a `classes` mask
MAX_CLASSES = 255  # class indices 0..254; 255 is reserved for "no prediction"

_SEP = b"\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REQUIRED = (
    "v", "kind", "seq", "stamp_ns", "frame_id", "width", "height",
    "encoding", "data", "classes", "model",
)  # fmt: skip
_JPEG_SOI = b"\xff\xd8"


@dataclass(frozen=True)
class MaskHeader:
    """Everything in a mask message except the mask itself (see PROTOCOL.md)."""

    topic: str
    v: int
    kind: str
    seq: int
    stamp_ns: int
    frame_id: str
    width: int
    height: int
    encoding: str
    classes: tuple[str, ...]
    model: str
    latency_ms: dict[str, float] = field(default_factory=dict)  # empty if absent


def subscription_prefix(topic: str) -> bytes:
    """The SUB filter for exactly `topic`: ``topic.encode() + b"\\x00"``.

    The trailing NUL makes ``cam0/drivable`` not match ``cam0/drivable2``.
    """
    return check_topic(topic).encode("utf-8") + _SEP


# --------------------------------------------------------------------------- encode


def encode(
    topic: str,
    kind: str,
    mask: np.ndarray,
    *,
    seq: int,
    stamp_ns: int,
    frame_id: str,
    classes: Sequence[str],
    model: str,
    encoding: str = "mono8",
    latency_ms: Mapping[str, float] | None = None,
) -> bytes:
    """Encode one mask as one ZeroMQ frame: ``topic + b"\\x00" + msgpack map``.

    Args:
        mask: ``(H, W) uint8``; for ``kind="drivable"`` values 0/1, for ``"classes"`` class
            indices below ``len(classes)`` or 255 (no prediction). ``1 <= H, W <= MAX_SIDE``.
        classes: for ``"drivable"`` exactly `DRIVABLE_CLASSES`; else the model's class names.
        encoding: one of `ENCODINGS`; ``"bits"`` only for ``"drivable"``.
        latency_ms: optional stage timings in ms; if given it must contain ``"total"``.

    Raises:
        ProtocolError: naming the first argument that breaks PROTOCOL.md.
    """
    check_topic(topic)
    _check_kind_encoding(kind, encoding)
    names = _check_classes(kind, classes)
    _check_mask(kind, mask, len(names))
    height, width = mask.shape
    payload: dict[str, Any] = {
        "v": VERSION,
        "kind": kind,
        "seq": check_uint("seq", seq),
        "stamp_ns": check_uint("stamp_ns", stamp_ns),
        "frame_id": check_str("frame_id", frame_id),
        "width": width,
        "height": height,
        "encoding": encoding,
        "data": _encode_data(mask, encoding),
        "classes": list(names),
        "model": check_str("model", model),
    }
    if latency_ms is not None:
        payload["latency_ms"] = _check_latency(latency_ms)
        if not all(0.0 <= ms < math.inf for ms in payload["latency_ms"].values()):
            raise ProtocolError(f"latency_ms values must be finite durations >= 0, got "
                                f"{payload['latency_ms']}")
    return pack_frame(topic, payload)


def encode_image(
    topic: str,
    jpeg: bytes,
    *,
    seq: int,
    stamp_ns: int,
    frame_id: str,
    width: int,
    height: int,
    model: str,
) -> bytes:
    """Encode a source frame, already a baseline JPEG of ``width`` x ``height``, as one
    ``kind = "image"`` frame carrying the seq and stamp of the masks made from it."""
    if not isinstance(jpeg, (bytes, bytearray)) or not bytes(jpeg[:2]) == _JPEG_SOI:
        raise ProtocolError("an image's data must be JPEG bytes (starting with FF D8)")
    for name, side in (("width", width), ("height", height)):
        if not 1 <= check_uint(name, side) <= MAX_SIDE:
            raise ProtocolError(f"image {name} {side} is outside 1..{MAX_SIDE}")
    payload = {"v": VERSION, "kind": IMAGE_KIND, "seq": check_uint("seq", seq),
               "stamp_ns": check_uint("stamp_ns", stamp_ns),
               "frame_id": check_str("frame_id", frame_id), "width": width, "height": height,
               "encoding": IMAGE_ENCODING, "data": bytes(jpeg), "classes": [],
               "model": check_str("model", model)}
    return pack_frame(topic, payload)


def _check_kind_encoding(kind: str, encoding: str) -> None:
    if kind == IMAGE_KIND:
        if encoding != IMAGE_ENCODING:
            raise ProtocolError(f"an image is encoded as {IMAGE_ENCODING!r}, got {encoding!r}")
        return
    if kind not in KINDS:
        raise ProtocolError(f"kind must be one of {(*KINDS, IMAGE_KIND)}, got {kind!r}")
    if encoding not in ENCODINGS:
        raise ProtocolError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if encoding == "bits" and kind != "drivable":
        raise ProtocolError(f"encoding 'bits' is for drivable masks only, not kind {kind!r}")


def _check_classes(kind: str, classes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise ProtocolError(f"classes must be a sequence of str, got {classes!r}")
    names = tuple(classes)
    if not all(isinstance(name, str) for name in names):
        raise ProtocolError(f"classes must all be str, got {names!r}")
    if kind == IMAGE_KIND:
        if names:
            raise ProtocolError(f"an image has an empty classes array, got {len(names)} names")
        return names
    if kind == "drivable" and names != DRIVABLE_CLASSES:
        raise ProtocolError(f"drivable classes must be exactly {list(DRIVABLE_CLASSES)}, got "
                            f"{list(names)}")
    if not 1 <= len(names) <= MAX_CLASSES:
        raise ProtocolError(f"a classes mask needs 1..{MAX_CLASSES} class names, got {len(names)}")
    return names


def _check_mask(kind: str, mask: np.ndarray, n_classes: int) -> None:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.uint8:
        got = (f"{mask.dtype} array of shape {mask.shape}" if isinstance(mask, np.ndarray)
               else type_name(mask))
        raise ProtocolError(f"mask must be an (H, W) uint8 array, got {got}; "
                            "convert with mask.astype(np.uint8)")
    height, width = mask.shape
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ProtocolError(f"mask size {width}x{height} is outside 1..{MAX_SIDE} per side")
    _check_values(kind, mask, n_classes)


def _check_values(kind: str, mask: np.ndarray, n_classes: int) -> None:
    """Drivable masks hold 0/1; classes masks hold indices < n_classes or 255."""
    top = int(mask.max())
    if kind == "drivable" and top > 1:
        raise ProtocolError(f"a drivable mask holds only 0 and 1, found value {top}")
    if kind == "classes" and top >= n_classes:
        bad = mask[(mask >= n_classes) & (mask != NO_PREDICTION)]
        if bad.size:
            raise ProtocolError(f"class value {int(bad[0])} has no name: {n_classes} classes "
                                f"(0..{n_classes - 1}) and {NO_PREDICTION} = no prediction")


def _check_latency(latency_ms: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(latency_ms, Mapping):
        raise ProtocolError(f"latency_ms must be a map str -> float, got {latency_ms!r}")
    out: dict[str, float] = {}
    for stage, ms in latency_ms.items():
        if not isinstance(stage, str) or isinstance(ms, bool) or not isinstance(
            ms, (int, float, np.integer, np.floating)
        ):
            raise ProtocolError(f"latency_ms must map str -> float, got {stage!r}: {ms!r}")
        out[stage] = float(ms)
    if "total" not in out:
        raise ProtocolError(f"latency_ms must contain 'total' (capture to publish), got {out}")
    return out


def _encode_data(mask: np.ndarray, encoding: str) -> bytes | memoryview:
    """``(H, W) uint8`` -> the bytes of `data` in `encoding` (mono8: a view of the mask)."""
    if encoding == "mono8":  # copied once, by pack_frame
        return memoryview(np.ascontiguousarray(mask)).cast("B")
    if encoding == "bits":
        return np.packbits(mask, axis=None, bitorder="big").tobytes()
    import cv2  # only the png encoding needs OpenCV

    ok, png = cv2.imencode(".png", np.ascontiguousarray(mask), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ProtocolError(f"OpenCV could not encode a {mask.shape} mask as PNG")
    return png.tobytes()


# --------------------------------------------------------------------------- decode


def decode(
    frame: bytes, *, max_width: int = MAX_SIDE, max_height: int = MAX_SIDE
) -> tuple[MaskHeader, np.ndarray]:
    """Decode one mask or image frame into its header and data.

    Returns:
        ``(header, data)``: for kinds ``drivable`` / ``classes`` data is the ``(H, W) uint8``
        mask (a writable copy); for kind ``image`` it is the JPEG file as a ``(N,) uint8``
        array (``cv2.imdecode`` turns it into ``(height, width, 3) uint8`` BGR).

    Raises:
        ProtocolError: for a frame without ``\\x00``, a payload that is not a MessagePack map,
            a missing key, a wrong type, another `v`, a `data` length that does not match
            `encoding`/`width`/`height`, a size beyond ``max_width`` x ``max_height``, values
            that break the rules of `kind`, or a status message (see `decode_status`). The
            message starts with the topic when it could be read.
    """
    limits = Limits(max_width, max_height)
    topic, fields = read_frame(frame, limits)
    try:
        if fields.get("kind") == STATUS_KIND:
            raise ProtocolError("this is a status message: read it with decode_status or "
                                "decode_message")
        return _decode_fields(topic, fields, limits)
    except ProtocolError as exc:
        raise ProtocolError(f"{topic}: {exc}") from None


def decode_message(
    frame: bytes, *, max_width: int = MAX_SIDE, max_height: int = MAX_SIDE
) -> tuple[MaskHeader, np.ndarray] | NodeStatus:
    """Any frame of PROTOCOL.md: ``(header, data)`` as `decode` gives, or a NodeStatus."""
    limits = Limits(max_width, max_height)
    topic, fields = read_frame(frame, limits)
    try:
        if fields.get("kind") == STATUS_KIND:
            return status_from_fields(topic, fields)
        return _decode_fields(topic, fields, limits)
    except ProtocolError as exc:
        raise ProtocolError(f"{topic}: {exc}") from None


def read_frame(frame: bytes, limits: Limits) -> tuple[str, dict[str, Any]]:
    """Split a frame into its topic and checked top-level fields (``v`` is VERSION)."""
    topic, payload = split_frame(frame)
    try:
        fields = read_payload(payload, limits)
        _check_version(fields)
    except ProtocolError as exc:
        raise ProtocolError(f"{topic}: {exc}") from None
    return topic, fields


def _decode_fields(topic: str, fields: dict[str, Any], limits: Limits
                   ) -> tuple[MaskHeader, np.ndarray]:
    missing = [key for key in _REQUIRED if key not in fields]
    if missing:
        raise ProtocolError(f"payload is missing required key(s) {missing}")
    header = _read_header(topic, fields)
    if header.width > limits.max_width or header.height > limits.max_height:
        raise ProtocolError(f"size {header.width}x{header.height} exceeds the limit "
                            f"{limits.max_width}x{limits.max_height}; raise "
                            "max_width/max_height to accept it")
    data = fields["data"]
    if not isinstance(data, memoryview):
        raise ProtocolError(f"'data' must be bin, got {type_name(data)}")
    if header.kind == IMAGE_KIND:
        if bytes(data[:2]) != _JPEG_SOI:
            raise ProtocolError(f"'data' ({len(data)} bytes) is not a JPEG (no SOI marker)")
        return header, np.frombuffer(data, dtype=np.uint8).copy()
    mask = _decode_data(data, header.encoding, header.width, header.height)
    _check_values(header.kind, mask, len(header.classes))
    return header, mask


def _check_version(fields: dict[str, Any]) -> None:
    if "v" not in fields:
        raise ProtocolError("payload has no 'v' (protocol version)")
    version = fields["v"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError(f"'v' must be an int, got {type_name(version)}")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version v={version}; this reader speaks "
                            f"v={VERSION}: use an rtseg client of the same version as the node")


def _read_header(topic: str, fields: dict[str, Any]) -> MaskHeader:
    """Check the type and range of every field except `data`."""
    kind = field_of(fields, "kind", str)
    encoding = field_of(fields, "encoding", str)
    _check_kind_encoding(kind, encoding)
    classes = fields["classes"]
    if not isinstance(classes, list):
        raise ProtocolError(f"'classes' must be an array of str, got {type_name(classes)}")
    width, height = field_of(fields, "width", int), field_of(fields, "height", int)
    if width < 1 or height < 1:
        raise ProtocolError(f"size {width}x{height} is not positive")
    latency = fields.get("latency_ms", {})
    if "latency_ms" in fields and not isinstance(latency, dict):
        raise ProtocolError(f"'latency_ms' must be a map, got {type_name(latency)}")
    return MaskHeader(
        topic=topic,
        v=VERSION,
        kind=kind,
        seq=check_uint("seq", field_of(fields, "seq", int)),
        stamp_ns=check_uint("stamp_ns", field_of(fields, "stamp_ns", int)),
        frame_id=field_of(fields, "frame_id", str),
        width=width,
        height=height,
        encoding=encoding,
        classes=_check_classes(kind, classes),
        model=field_of(fields, "model", str),
        latency_ms=_check_latency(latency) if "latency_ms" in fields else {},
    )


def _decode_data(data: memoryview, encoding: str, width: int, height: int) -> np.ndarray:
    """`data` in `encoding` -> ``(height, width) uint8``; lengths checked before decoding."""
    pixels = width * height
    if encoding == "mono8":
        _check_length(encoding, len(data), pixels)
        return np.frombuffer(data, dtype=np.uint8).reshape(height, width).copy()
    if encoding == "bits":
        _check_length(encoding, len(data), math.ceil(pixels / 8))
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=pixels, bitorder="big")
        return bits.reshape(height, width)
    return _decode_png(data, width, height)


def _check_length(encoding: str, got: int, want: int) -> None:
    if got != want:
        raise ProtocolError(f"'data' has {got} bytes but encoding {encoding!r} at this "
                            f"width x height needs {want}")


def _decode_png(data: memoryview, width: int, height: int) -> np.ndarray:
    """Check the PNG's IHDR (size, 8-bit grayscale) before OpenCV decodes anything, so
    the decoder never allocates beyond the declared, already limited, size."""
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ProtocolError(f"'data' ({len(data)} bytes) is not a PNG (no signature + IHDR)")
    png_w, png_h, depth, color = struct.unpack(">IIBB", data[16:26])
    if (png_w, png_h) != (width, height):
        raise ProtocolError(f"PNG is {png_w}x{png_h} but width x height says {width}x{height}")
    if (depth, color) != (8, 0):
        raise ProtocolError(f"PNG must be 8-bit single-channel (grayscale), got bit depth "
                            f"{depth}, colour type {color}")
    import cv2  # only the png encoding needs OpenCV

    mask = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.shape != (height, width) or mask.dtype != np.uint8:
        raise ProtocolError(f"'data' is a broken or truncated PNG ({len(data)} bytes)")
    return mask
