"""`rtseg view`: a live browser viewer of a node's cameras (standard library HTTP, no torch).

Per camera NAME it subscribes to `NAME/classes`, `NAME/drivable`, `NAME/image` and
`NAME/status` and serves, on loopback by default:

- ``/``: one page, per camera the live overlay (classes in the palette of rtseg.palette,
  the drivable area tinted), its legend, and seq / fps / latency / dropped;
- ``/NAME/overlay.mjpg``: the overlay as MJPEG (``multipart/x-mixed-replace``);
- ``/NAME/overlay.jpg``: the newest overlay as one JPEG;
- ``/NAME/info.json``: the numbers and the legend the page shows.

With ``fuse`` (`rtseg view --fuse`) the cameras' grids fused (rtseg.grid_fusion), seen
from above, are one more picture on the page, ``/grid/overlay.mjpg``: the surround view.

Without an image topic (a node run without ``--image-topic``) the coloured masks alone.
With a camera file for a camera (``cameras``, rtseg.ground) its picture also shows, on the
right, the drivable mask on the ground seen from above (rtseg.ground_draw.grid_picture).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from rtseg.camera_file import load_grounds
from rtseg.client import MaskSubscriber
from rtseg.compose import (
    Composite,
    Compositor,
    FrameParts,
    draw_or_skip,
    overlay_jpeg,
    receive_frames,
)
from rtseg.errors import RtsegError
from rtseg.grid_fusion import FUSED_TOPIC, GridFusion
from rtseg.ground import GridSpec, GroundGrid
from rtseg.httpbind import SocketHTTPServer, listen_socket, socket_url
from rtseg.palette import legend
from rtseg.protocol import MaskHeader, NodeStatus
from rtseg.signals import wait_for_stop
from rtseg.view_page import render_page

log = logging.getLogger("rtseg.view")
BOUNDARY = "rtsegframe"
STILL_WAIT_S = 5.0  # how long /NAME/overlay.jpg waits for a first frame
RATE_WINDOW_S = 3.0


@dataclass(frozen=True)
class ViewConfig:
    """`rtseg view`: the node's `endpoint`, its camera `names` (topic prefixes), where the
    page is served (`bind`, `port`; 0 = a free port), and the overlays' JPEG quality."""

    endpoint: str
    names: tuple[str, ...] = ("demo",)
    port: int = 8080
    bind: str = "127.0.0.1"
    allow_remote: bool = False
    jpeg_quality: int = 80
    curve_server_key: str | None = None  # a node run with --curve-secret
    curve_secret: str | None = None  # this client's key pair, for a node listing clients
    cameras: tuple[str, ...] = ()  # --camera [NAME=]FILE: the grid from above, beside
    fuse: bool = False  # --fuse: the cameras' grids fused, from above, at /grid/


class CameraState:
    """The newest overlay of one camera (JPEG bytes), its numbers, and a condition that
    wakes the MJPEG streams when a new overlay is in. Thread-safe."""

    def __init__(self, name: str, fixed_legend: list[dict] | None = None,
                 shows: str | None = None) -> None:
        self.name = name
        self._legend = fixed_legend  # the fused grid's: its colours, not class names
        self._shows = shows  # the fused grid's: what it is made of
        self._cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.version = 0
        self._last: Composite | None = None
        self._status = None  # SourceStatus of this camera, from NAME/status
        self._drawn: deque[float] = deque()

    def put(self, composite: Composite, jpeg: bytes) -> None:
        with self._cond:
            self.jpeg, self._last = jpeg, composite
            self.version += 1
            now = time.monotonic()
            self._drawn.append(now)
            while now - self._drawn[0] > RATE_WINDOW_S:
                self._drawn.popleft()
            self._cond.notify_all()

    def put_status(self, status: NodeStatus) -> None:
        entry = next((s for s in status.sources if s.name == self.name), None)
        with self._cond:
            self._status = entry

    def wait_newer(self, version: int, timeout_s: float) -> tuple[bytes | None, int]:
        """The newest JPEG once its version is above `version`, or (None, version) after
        `timeout_s`."""
        with self._cond:
            self._cond.wait_for(lambda: self.version > version, timeout=timeout_s)
            if self.version > version:
                return self.jpeg, self.version
            return None, version

    def info(self) -> dict:
        """What the page shows: seq, latency and age (ms), node fps, dropped, legend..."""
        with self._cond:
            last, status, drawn = self._last, self._status, list(self._drawn)
        span = drawn[-1] - drawn[0] if len(drawn) > 1 else 0.0
        return {
            "name": self.name,
            "seq": None if last is None else last.seq,
            "latency_ms": None if last is None else last.latency_ms.get("total"),
            "age_ms": None if last is None else (time.time_ns() - last.stamp_ns) / 1e6,
            "over_image": bool(last and last.over_image),
            "shows": self._shows,
            "fps": None if status is None else status.fps,
            "dropped": None if status is None else status.dropped,
            "state": None if status is None else status.state,
            "view_fps": (len(drawn) - 1) / span if span > 0 else 0.0,
            "overlays": self.version,
            "legend": self._legend or (legend(last.class_names) if last else []),
        }


def grid_of_frame(ground: GroundGrid, parts: FrameParts):
    """(header, grid (rows, cols) int8) of the frame's drivable mask (or, for a camera file
    with [costs], of its classes mask); None when the frame lacks that mask."""
    if ground.mask_kind not in parts.masks:
        return None
    header, mask = parts.masks[ground.mask_kind]
    return header, ground.grid_of(mask, header.classes)


def with_grid(composite: Composite, grid: GridSpec, values) -> Composite:
    """`composite` with `values` (rows, cols) int8, a grid of `grid`, seen from above
    (rtseg.ground_draw.grid_picture) on its right, at its height."""
    import numpy as np

    from rtseg.ground_draw import grid_picture

    picture = grid_picture(grid, values, composite.bgr.shape[0])
    return replace(composite, bgr=np.hstack([composite.bgr, picture]))


def _topics(names: tuple[str, ...]) -> list[str]:
    return [f"{n}/{kind}" for n in names for kind in ("drivable", "classes", "image", "status")]


def _fusion(cfg: ViewConfig, grounds: dict[str, GroundGrid]) -> GridFusion | None:
    """--fuse: the fusion of the cameras' grids (RtsegError: fewer than two camera files,
    differing grids, or a camera named like the fused picture's path)."""
    if not cfg.fuse:
        return None
    if FUSED_TOPIC in cfg.names:
        raise RtsegError(f"--fuse shows the fused grid at /{FUSED_TOPIC}/: a camera may not be "
                         f"called {FUSED_TOPIC} (rename it with the node's --name)")
    return GridFusion(grounds)


class Viewer:
    """The HTTP server and the subscriber thread of `rtseg view`; a context manager."""

    def __init__(self, cfg: ViewConfig) -> None:
        if not cfg.names:
            raise RtsegError("rtseg view needs at least one camera NAME, e.g. demo")
        self.cfg = cfg
        self.grounds = load_grounds(cfg.cameras, cfg.names)
        self.fusion = _fusion(cfg, self.grounds)
        self.cameras = {name: CameraState(name) for name in cfg.names}
        if self.fusion is not None:
            from rtseg.ground_draw import grid_legend

            self.cameras[FUSED_TOPIC] = CameraState(
                FUSED_TOPIC, grid_legend(), "grids of " + ", ".join(self.fusion.cameras))
        self._stop = threading.Event()
        sock = listen_socket(cfg.bind, cfg.port, allow_remote=cfg.allow_remote)
        self.url = socket_url(sock)
        self.page = render_page(cfg.endpoint, tuple(self.cameras))
        try:
            self._sub = MaskSubscriber(cfg.endpoint, _topics(cfg.names), timeout_ms=200,
                                       on_status=self._on_status,
                                       curve_server_key=cfg.curve_server_key,
                                       curve_secret=cfg.curve_secret)
        except BaseException:
            sock.close()
            raise
        self._server = _Server(sock, self)
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True,
                                          name="rtseg-view-http"),
                         threading.Thread(target=self._receive, daemon=True,
                                          name="rtseg-view-sub")]
        for thread in self._threads:
            thread.start()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def overlays(self) -> int:
        """Overlays drawn so far, over all cameras."""
        return sum(camera.version for camera in self.cameras.values())

    def _on_status(self, status: NodeStatus) -> None:
        name = status.topic.rsplit("/", 1)[0]
        if name in self.cameras:
            self.cameras[name].put_status(status)

    def _receive(self) -> None:
        try:
            self._receive_loop()
        except Exception:
            log.exception("the viewer's subscriber failed: no new frames will show")

    def _receive_loop(self) -> None:
        """Receive until stopped, drawing each camera's newest complete frame."""
        compositors = {n: Compositor(("classes", "drivable", "image")) for n in self.cfg.names}
        receive_frames(self._sub, compositors, self._stop.is_set, self._show)

    def _show(self, name: str, parts: FrameParts) -> None:
        composite = draw_or_skip(name, parts)
        if composite is None:
            return
        ground = self.grounds.get(name)
        of_frame = grid_of_frame(ground, parts) if ground is not None else None
        if of_frame is not None:
            header, values = of_frame
            composite = with_grid(composite, ground.grid, values)
            if self.fusion is not None:
                self._show_fused(header, self.fusion.update(name, header.stamp_ns, values))
        self.cameras[name].put(composite, overlay_jpeg(composite, self.cfg.jpeg_quality).tobytes())

    def _show_fused(self, header: MaskHeader, fused) -> None:
        """The fused grid (rows, cols) int8, after `header`'s camera's grid, from above."""
        from rtseg.ground_draw import PICTURE_HEIGHT, grid_picture

        state = self.cameras[FUSED_TOPIC]
        composite = Composite(seq=state.version, stamp_ns=header.stamp_ns, latency_ms={},
                              bgr=grid_picture(self.fusion.grid, fused, PICTURE_HEIGHT),
                              class_names=(), over_image=False)
        state.put(composite, overlay_jpeg(composite, self.cfg.jpeg_quality).tobytes())

    def close(self) -> None:
        """Stop the streams, the server and the subscriber. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._sub.close()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(SocketHTTPServer):
    """The viewer's HTTP server on its listening socket, knowing its Viewer."""

    def __init__(self, sock, viewer: Viewer) -> None:
        super().__init__(sock, _Handler)
        self.viewer = viewer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY on each connection: headers and body are two writes, and with Nagle's
    # algorithm the body waits for the client's delayed ACK of the headers (~40 ms on
    # Linux) on every kept-alive request
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802  (the http.server name)
        viewer = self.server.viewer
        path = unquote(urlsplit(self.path).path)
        if path in ("/", "/index.html"):
            return self._send(200, "text/html; charset=utf-8", viewer.page)
        name, _, leaf = path[1:].rpartition("/")
        camera = viewer.cameras.get(name)
        if camera is not None and leaf == "overlay.mjpg":
            return self._stream(camera)
        if camera is not None and leaf == "overlay.jpg":
            return self._still(camera)
        if camera is not None and leaf == "info.json":
            return self._send(200, "application/json", json.dumps(camera.info()).encode())
        known = ", ".join(viewer.cameras)
        self._send(404, "text/plain; charset=utf-8",
                   f"no such page {path}: try / or /NAME/overlay.mjpg, /NAME/overlay.jpg, "
                   f"/NAME/info.json for NAME in {known}\n".encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _still(self, camera: CameraState) -> None:
        jpeg, _ = camera.wait_newer(0, STILL_WAIT_S)
        if jpeg is None:
            msg = (f"no frame from {camera.name} yet: is a node publishing "
                   f"{camera.name}/classes at {self.server.viewer.cfg.endpoint}?\n")
            return self._send(503, "text/plain; charset=utf-8", msg.encode())
        self._send(200, "image/jpeg", jpeg)

    def _stream(self, camera: CameraState) -> None:
        """multipart/x-mixed-replace: one JPEG part per new overlay, until the client
        goes or the viewer stops."""
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        version = 0
        try:
            self.wfile.write(f"--{BOUNDARY}\r\n".encode())
            while not self.server.viewer.stopping:
                jpeg, version = camera.wait_newer(version, 0.5)
                if jpeg is None:
                    continue
                # The boundary right after the part: browsers show a part once they
                # see the next boundary, so this one shows now, not one frame late.
                self.wfile.write(f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                 "\r\n\r\n".encode() + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser closed the stream

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (the base's name)
        log.debug("%s %s", self.address_string(), format % args)


def run_view(cfg: ViewConfig, stop: threading.Event | None = None,
             on_ready: Callable[[str], None] | None = None) -> int:
    """Serve until `stop` is set or a SIGINT/SIGTERM (StopRequested, whose detail then
    counts the overlays); returns the overlays drawn. `on_ready(url)` once listening."""
    stop = stop or threading.Event()
    with Viewer(cfg) as viewer:
        log.info("viewer of %s on %s at %s/ (Ctrl-C stops it)", ", ".join(cfg.names),
                 cfg.endpoint, viewer.url)
        if on_ready is not None:
            on_ready(viewer.url)
        wait_for_stop(stop, lambda: f"after {viewer.overlays} overlays")
        return viewer.overlays
