"""A real MJPEG-over-HTTP camera for tests: multipart/x-mixed-replace JPEG frames.

The socket, the clients' threads and `down()` / `up()` (a camera that dies and comes back
on the same port) are camera_server.FakeCamera's.
"""

from __future__ import annotations

import socket

import cv2
import numpy as np
from camera_server import FakeCamera  # tests/ is on sys.path

BOUNDARY = b"rtsegframe"


class MjpegCamera(FakeCamera):
    """Serves generated road scenes at `fps` to every client on its own thread."""

    def __init__(self, height: int = 96, width: int = 128, fps: float = 20.0) -> None:
        super().__init__(height, width, fps, seed=3)
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self.requests: list[bytes] = []  # each client's HTTP request, as received

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = conn.recv(65536)  # any path gets the stream
            with self._lock:
                self.requests.append(request)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;"
                         b"boundary=" + BOUNDARY + b"\r\n\r\n")
            for jpeg in self._frames():
                conn.sendall(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                             b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n"
                             + jpeg + b"\r\n")
        except OSError:
            pass
        finally:
            conn.close()


def blank_jpeg() -> bytes:
    """A tiny valid JPEG (tests of the image topic's reader)."""
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return buf.tobytes()
