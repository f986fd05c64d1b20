"""JPEG / PNG files from outside (HTTP bodies, the `NODE/image` topic): size first, then
decode, so a hostile file cannot make the decoder allocate beyond a limit. No torch.
"""

from __future__ import annotations

import struct

import numpy as np

from rtseg.wire import MAX_SIDE

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers (baseline, progressive, lossless, ...): not DHT, JPG, DAC.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NO_LENGTH = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI


class ImageFileError(ValueError):
    """A file that is not a usable JPEG/PNG; `status` is the HTTP status it deserves."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def sniff(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` of a JPEG or PNG file from its header alone.

    Raises:
        ImageFileError: empty, neither JPEG nor PNG (415), or a header without a size.
    """
    if not data:
        raise ImageFileError("the image is empty (0 bytes): send a JPEG or PNG file")
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageFileError("a PNG without its IHDR header: the file is truncated")
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data.startswith(_JPEG_SOI):
        return ("jpeg", *_jpeg_size(data))
    raise ImageFileError(f"not a JPEG or PNG file (it starts with {bytes(data[:8])!r}): send "
                         "a JPEG or PNG image", status=415)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment of a JPEG."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageFileError(f"a broken JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _NO_LENGTH:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker in (0xD9, 0xDA) or length < 2:  # EOI / scan data before any frame header
            break
        pos += 2 + length
    raise ImageFileError("a JPEG without a frame header (SOF): the file is truncated or broken")


def decode_image(data: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """A JPEG or PNG file -> ``(H, W, 3) uint8`` BGR, its size checked before decoding.

    Raises:
        ImageFileError: see `sniff`; a side beyond `max_side` (413), or a file OpenCV
            cannot decode (truncated, corrupt) or whose pixels do not match its header.
    """
    import cv2

    fmt, width, height = sniff(data)
    if width < 1 or height < 1:
        raise ImageFileError(f"the {fmt} header says {width}x{height}: the file is broken")
    if width > max_side or height > max_side:
        raise ImageFileError(f"the {fmt} is {width}x{height}; each side must be 1..{max_side} "
                             "pixels: send a smaller image", status=413)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFileError(f"the {fmt} file ({len(data)} bytes) could not be decoded: it "
                             "is truncated or corrupt")
    if image.shape[:2] != (height, width):
        raise ImageFileError(f"the {fmt} decodes to {image.shape[1]}x{image.shape[0]}, its "
                             f"header says {width}x{height}")
    return image
