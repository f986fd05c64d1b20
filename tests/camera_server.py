"""What the tests' network cameras share (mjpeg_server, rtsp_server): generated road
scenes as JPEGs, a listening socket held for the camera's whole life, a thread per client,
and a camera that can die and come back.

The socket is bound once (port 0: the kernel picks, `port` tells) and held until
`close()`. `down()` makes the camera die: open streams are cut and new connections are
reset at once (linger 0, as from a crashed camera); `up()` brings it back on the same
port, which never left the test's hands. `freeze()` keeps every connection open but sends
nothing (a camera that hangs, or a Wi-Fi link that stalls) until `thaw()`.
"""

from __future__ import annotations

import socket
import threading
import time

import cv2


class FakeCamera:
    """Subclasses serve one client in `_serve(conn)`, each on its own thread."""

    def __init__(self, height: int, width: int, fps: float, seed: int) -> None:
        from rtseg.data.synthetic import SceneStream

        self._scenes = SceneStream(seed=seed, height=height, width=width)
        self._period = 1.0 / fps
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._alive, self._closed = threading.Event(), threading.Event()
        self._alive.set()
        self._frozen = threading.Event()
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _jpeg(self) -> bytes:
        """The next scene as a baseline JPEG (OpenCV's: 4:2:0, standard Huffman tables)."""
        with self._lock:
            rgb, _ = self._scenes.next()
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return buf.tobytes()

    def _streaming(self) -> bool:
        return self._alive.is_set() and not self._closed.is_set()

    def _frames(self):
        """One JPEG per frame period while the stream lasts; none while frozen."""
        while self._streaming():
            if not self._frozen.is_set():
                yield self._jpeg()
            time.sleep(self._period)  # the camera's frame rate

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

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
        raise NotImplementedError

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

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
