"""A real MJPEG-over-HTTP camera for tests: multipart/x-mixed-replace JPEG frames.

The listening socket is bound once (port 0: the kernel picks, `url` tells) and held for the
server's whole life. `down()` makes the camera die: open streams are cut and new
connections are closed at once (the client sees resets, as from a crashed camera);
`up()` brings it back on the same port, which never left the test's hands.
"""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np

BOUNDARY = b"rtsegframe"


class MjpegCamera:
    """Serves generated road scenes at `fps` to every client on its own thread."""

    def __init__(self, height: int = 96, width: int = 128, fps: float = 20.0) -> None:
        from rtseg.data.synthetic import SceneStream

        self._scenes = SceneStream(seed=3, height=height, width=width)
        self._period = 1.0 / fps
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stream.mjpg"
        self._alive = threading.Event()
        self._alive.set()
        self._closed = threading.Event()
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self.requests: list[bytes] = []  # each client's HTTP request, as received
        threading.Thread(target=self._accept, daemon=True).start()

    def _jpeg(self) -> bytes:
        with self._lock:
            rgb, _ = self._scenes.next()
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return buf.tobytes()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if not self._alive.is_set():
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                conn.close()  # linger 0: a reset, like a dead camera
                continue
            with self._lock:
                self._clients.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = conn.recv(65536)  # any path gets the stream
            with self._lock:
                self.requests.append(request)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;"
                         b"boundary=" + BOUNDARY + b"\r\n\r\n")
            while self._alive.is_set() and not self._closed.is_set():
                jpeg = self._jpeg()
                conn.sendall(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                             b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n"
                             + jpeg + b"\r\n")
                time.sleep(self._period)  # the camera's frame rate
        except OSError:
            pass
        finally:
            conn.close()

    def down(self) -> None:
        """Cut every open stream and refuse new ones until `up()`."""
        self._alive.clear()
        with self._lock:
            clients, self._clients = self._clients, []
        for conn in clients:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(self) -> None:
        self._alive.set()

    def close(self) -> None:
        self._closed.set()
        self.down()
        self._listener.close()

    def __enter__(self) -> MjpegCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def blank_jpeg() -> bytes:
    """A tiny valid JPEG (tests of the image topic's reader)."""
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return buf.tobytes()
