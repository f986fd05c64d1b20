"""A real RTSP camera for tests: RTP/JPEG (RFC 2435) over RTSP, interleaved on TCP.

What an IP camera does for one client: OPTIONS, DESCRIBE (an SDP with one JPEG video
track), SETUP, PLAY, then RTP packets of generated road scenes at `fps` on the RTSP
connection itself (``$``, channel 0, length, packet), until TEARDOWN or the client goes.
It speaks RTP over TCP only: a SETUP asking for UDP gets ``461 Unsupported Transport``,
as from a camera behind a NAT, so a client must ask for TCP. Every request is kept
(`requests`) so a test can see what the client asked for. The socket, the clients'
threads and `down()` / `up()` (a camera that dies and comes back on the same port) are
camera_server.FakeCamera's.

Frames are OpenCV's baseline JPEGs (4:2:0, the standard Huffman tables), sent as RFC 2435
type 1 with Q = 255: the quantisation tables travel in each frame's first packet, so the
receiver rebuilds the exact JPEG headers.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections import deque

from camera_server import FakeCamera  # tests/ is on sys.path

PAYLOAD = 1400  # bytes of JPEG scan data per RTP packet
SSRC = 0x52545347


def jpeg_parts(jpeg: bytes) -> tuple[bytes, bytes, int, int]:
    """A baseline 4:2:0 JPEG -> (its quantisation tables as RFC 2435 sends them, the scan
    data up to EOI, width, height)."""
    tables, pos, size = b"", 2, None
    while pos < len(jpeg):
        marker, length = jpeg[pos + 1], struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        body = jpeg[pos + 4:pos + 2 + length]
        if marker == 0xDB:  # DQT: (Pq/Tq, 64 bytes in zig-zag order) per table
            tables += b"".join(body[i + 1:i + 65] for i in range(0, len(body), 65))
        elif marker == 0xC0:  # SOF0: precision, height, width, components
            height, width = struct.unpack(">HH", body[1:5])
            assert body[7] == 0x22, "the luma sampling must be 2x2 (4:2:0, RFC 2435 type 1)"
            size = (width, height)
        elif marker == 0xDA:  # SOS: the scan follows its header, up to EOI
            end = jpeg.rindex(b"\xff\xd9")
            assert size is not None and len(tables) == 128
            return tables, jpeg[pos + 2 + length:end], size[0], size[1]
        pos += 2 + length
    raise ValueError("no scan in the JPEG")


def rtp_packets(jpeg: bytes, seq: itertools.count, stamp: int) -> list[bytes]:
    """One frame as RTP/JPEG packets (payload type 26, the marker bit on the last)."""
    tables, scan, width, height = jpeg_parts(jpeg)
    assert width % 8 == 0 and height % 8 == 0 and width <= 2040 and height <= 2040
    packets = []
    for offset in range(0, len(scan), PAYLOAD):
        chunk = scan[offset:offset + PAYLOAD]
        last = offset + PAYLOAD >= len(scan)
        rtp = struct.pack(">BBHII", 0x80, 26 | (0x80 if last else 0), next(seq) & 0xFFFF,
                          stamp & 0xFFFFFFFF, SSRC)
        jpeg_header = struct.pack(">I", offset) + bytes([1, 255, width // 8, height // 8])
        if offset == 0:  # Q >= 128: the tables in the first packet
            jpeg_header += struct.pack(">BBH", 0, 0, len(tables)) + tables
        packets.append(rtp + jpeg_header + chunk)
    return packets


class RtspCamera(FakeCamera):
    """Serves generated road scenes at `fps` over RTSP to every client, each on a thread."""

    def __init__(self, height: int = 96, width: int = 128, fps: float = 20.0) -> None:
        super().__init__(height, width, fps, seed=5)
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.requests: list[str] = []  # every RTSP request received, as text
        self.frames_sent = 0
        self.recent: deque[bytes] = deque(maxlen=64)  # the last JPEGs sent

    def setups(self) -> list[str]:
        """The Transport header of each SETUP received."""
        with self._lock:
            return [_header(r, "Transport") for r in self.requests if r.startswith("SETUP")]

    def _serve(self, conn: socket.socket) -> None:
        reader, sending = conn.makefile("rb"), threading.Lock()
        streaming = threading.Event()
        try:
            while not self._closed.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                reply = self._answer(request)
                with sending:
                    conn.sendall(reply.encode())
                if request.startswith("PLAY") and not streaming.is_set():
                    streaming.set()
                    threading.Thread(target=self._stream, args=(conn, sending),
                                     daemon=True).start()
                if request.startswith("TEARDOWN"):
                    return
        except OSError:
            pass
        finally:
            streaming.set()
            conn.close()

    def _answer(self, request: str) -> str:
        method, cseq = request.split(" ", 1)[0], _header(request, "CSeq")
        head = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n"
        if method == "OPTIONS":
            return head + "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"
        if method == "DESCRIBE":
            sdp = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rtseg test camera\r\n"
                   "c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:track1\r\n")
            return (head + f"Content-Base: {self.url}/\r\nContent-Type: application/sdp\r\n"
                    f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")
        if method == "SETUP":
            if "TCP" not in _header(request, "Transport"):
                return f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n"
            return (head + "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                    "Session: 5254534701\r\n\r\n")
        if method in ("PLAY", "TEARDOWN", "GET_PARAMETER"):
            return head + "Session: 5254534701\r\n\r\n"
        return f"RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n"

    def _stream(self, conn: socket.socket, sending: threading.Lock) -> None:
        seq, start = itertools.count(1), time.monotonic()
        try:
            for jpeg in self._frames():
                stamp = round((time.monotonic() - start) * 90000)  # the 90 kHz RTP clock
                with sending:
                    for packet in rtp_packets(jpeg, seq, stamp):
                        conn.sendall(b"$\x00" + struct.pack(">H", len(packet)) + packet)
                with self._lock:
                    self.frames_sent += 1
                    self.recent.append(jpeg)
        except OSError:
            pass
        finally:
            conn.close()


def _read_request(reader) -> str | None:
    """The next RTSP request on the connection (interleaved RTCP from the client skipped);
    None once it closed."""
    while True:
        first = reader.read(1)
        if not first:
            return None
        if first == b"$":  # interleaved: channel, 16-bit length, packet
            head = reader.read(3)
            if len(head) < 3:
                return None
            reader.read(struct.unpack(">H", head[1:])[0])
            continue
        lines = [first + reader.readline()]
        while lines[-1] not in (b"\r\n", b"\n", b""):
            lines.append(reader.readline())
        text = b"".join(lines).decode("latin-1")
        length = _header(text, "Content-Length")
        if length:
            reader.read(int(length))
        return text


def _header(request: str, name: str) -> str:
    for line in request.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""
