"""`rtseg serve`: segmentation over HTTP (FastAPI + uvicorn), through the node's pipeline.

- ``POST /segment`` with a JPEG or PNG body: an 8-bit single-channel PNG of class indices
  at the image's size (as `rtseg predict` writes); ``?format=json``: the drivable fraction,
  the class histogram (pixels per class name) and the stage timings instead;
  ``?format=grid`` (with a camera file, ``rtseg serve --camera FILE``): the mask on the
  ground as ``nav_msgs/OccupancyGrid`` in JSON, as rosbridge sends it (``data`` a list of
  cell values, row-major from (x_min, y_min); a cost grid with ``[costs]``);
  ``?format=overlay``: a JPEG of the classes drawn over the image, as the viewer draws
  them (a look from a browser or curl). Timings also travel in the ``Server-Timing``
  header.
- ``GET /model``: name, classes, drivable classes, palette (by class name, as the viewer
  draws), input size, normalisation. ``GET /healthz``: ``{"status": "ok"}``.
- ``GET /metrics``: Prometheus metrics (requests, latency, stage times, readiness, the
  model; `rtseg.serve_metrics`), answered while the model loads too.

Bad input (empty, not a JPEG/PNG, larger than the limits, undecodable) is a 4xx with a
message; one inference runs at a time (a lock), decoding and encoding run beside it. The
server answers from the moment it listens: while the model loads (a checkpoint's engine
compiles once, parity gate included) every route but ``/healthz`` is a 503 with
``Retry-After``, and ``/healthz`` a 503 ``{"status": "loading"}``, as a readiness probe
expects; a model that fails to load stops the server with its error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from rtseg.ground import GroundGrid
from rtseg.httpbind import listen_socket, socket_url
from rtseg.imagefile import ImageFileError, decode_image
from rtseg.segmenter import Segmenter
from rtseg.serve_metrics import MetricsMiddleware, ServeMetrics
from rtseg.signals import StopRequested
from rtseg.wire import MAX_SIDE

log = logging.getLogger("rtseg.serve")
MEDIA = {"png": "image/png", "overlay": "image/jpeg"}  # the bodies of ?format= png, overlay


@dataclass(frozen=True)
class ServeConfig:
    """`rtseg serve`: the model (checkpoint, `demo`, manifest or engine) on `device` and how
    it runs (`engine` torch: eagerly; else compiled once into `engine_cache` in `precision`,
    gated on `calib`, as `rtseg run --engine`), where to listen (`bind`, `port`; 0 = a free
    port), and the request limits."""

    model: str = "demo"
    port: int = 8000
    bind: str = "127.0.0.1"
    allow_remote: bool = False
    device: str = "auto"
    max_bytes: int = 20_000_000
    max_side: int = MAX_SIDE
    camera: str | None = None  # a camera file: ?format=grid
    engine: str = "torch"
    engine_cache: str = "engines/cache"
    calib: str | None = None
    precision: str | None = None
    drivable: tuple[str, ...] = ()  # classes of the drivable mask ((): the model's)

    def __post_init__(self):
        from rtseg.config.commands import check_engine

        check_engine(self.engine, self.precision, self.calib)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (413) once it passes `max_bytes`, before reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"the body is {int(declared)} bytes; the limit is {max_bytes} "
                                 "(rtseg serve --max-mb): send a smaller image")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"the body is over the limit of {max_bytes} bytes "
                                     "(rtseg serve --max-mb): send a smaller image")
    return bytes(body)


def _encode_png(classes: np.ndarray) -> bytes:
    import cv2

    ok, png = cv2.imencode(".png", classes)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {classes.shape} mask as PNG")
    return png.tobytes()


class Loader:
    """The Segmenter of `rtseg serve`, opened on a thread while the server already answers:
    `get()` gives it once ready, else raises the 503 a client should retry."""

    def __init__(self, open_segmenter: Callable[[], Segmenter]):
        self.segmenter: Segmenter | None = None
        self.error: BaseException | None = None
        self.on_failure: Callable[[], None] = lambda: None
        self.on_ready: Callable[[Segmenter], None] = lambda segmenter: None
        self._open = open_segmenter
        self._thread = threading.Thread(target=self._run, name="rtseg-serve-load", daemon=True)

    @classmethod
    def ready(cls, segmenter: Segmenter) -> Loader:
        """A Loader of an already open Segmenter."""
        loader = cls(lambda: segmenter)
        loader.segmenter = segmenter
        return loader

    def start(self) -> Loader:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.segmenter = self._open()
        except BaseException as exc:  # re-raised by run_serve in the main thread
            self.error = exc
            self.on_failure()
            return
        self.on_ready(self.segmenter)

    def get(self) -> Segmenter:
        """The open Segmenter; HTTPException 503 while it loads or after it failed to."""
        if self.segmenter is not None:
            return self.segmenter
        if self.error is not None:
            raise HTTPException(503, f"the model failed to load: {self.error}")
        raise HTTPException(503, "the model is loading (a checkpoint's engine compiles once, "
                                 "on the first start): retry shortly",
                            headers={"Retry-After": "1"})


def _encode_overlay(segmenter: Segmenter, image: np.ndarray, masks) -> bytes:
    """?format=overlay: the viewer's drawing of `masks` over `image`, JPEG (quality 90)."""
    import cv2

    ok, jpeg = cv2.imencode(".jpg", segmenter.overlay(image, masks),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} overlay as JPEG")
    return jpeg.tobytes()


def _summary(segmenter: Segmenter, masks, timings: dict) -> dict:
    """The JSON answer: size, drivable fraction, pixels per class name, timings (ms)."""
    classes = masks.classes
    counts = np.bincount(classes.ravel(), minlength=len(segmenter.spec.classes))
    return {"model": segmenter.spec.name, "width": classes.shape[1],
            "height": classes.shape[0],
            "drivable_fraction": float(np.count_nonzero(masks.drivable)) / classes.size,
            "histogram": {name: int(counts[i]) for i, name in enumerate(segmenter.spec.classes)},
            "timings_ms": timings}


def _grid(segmenter: Segmenter, ground: GroundGrid, masks, stamp_ns: int) -> dict:
    """?format=grid: the camera's grid of `masks` as nav_msgs/OccupancyGrid, JSON-ready."""
    from rtseg.protocol import MaskHeader
    from rtseg.ros2msg import grid_to_ros

    values = ground.grid_of_masks(masks, segmenter.spec.classes)
    height, width = masks.classes.shape
    header = MaskHeader(topic="", v=1, kind=ground.mask_kind, seq=0, stamp_ns=stamp_ns,
                        frame_id=ground.grid.frame_id, width=width, height=height,
                        encoding="mono8", classes=(),
                        model=segmenter.spec.name)
    message = grid_to_ros(header, ground.grid, values)
    return {**message, "data": message["data"].tolist()}


def create_app(segmenter: Segmenter | Loader, max_bytes: int = 20_000_000,
               max_side: int = MAX_SIDE, ground: GroundGrid | None = None) -> FastAPI:
    """The FastAPI app of `rtseg serve` around a Segmenter, ready or loading (a Loader),
    and the camera file's GroundGrid for ?format=grid."""
    app = FastAPI(title="rtseg serve", version="1")
    loader = segmenter if isinstance(segmenter, Loader) else Loader.ready(segmenter)
    metrics = ServeMetrics(lambda: loader.segmenter is not None, lambda: _labels(loader))
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/healthz")
    def healthz():
        if loader.segmenter is None:
            return JSONResponse({"status": "failed" if loader.error else "loading"}, 503,
                                headers={"Retry-After": "1"})
        return {"status": "ok", "model": loader.segmenter.spec.name}

    @app.get("/model")
    def model() -> dict:
        return loader.get().describe()

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        body, media = metrics.exposition(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": media})

    @app.post("/segment")
    async def segment(request: Request, format: str = "png"):  # noqa: A002  (?format=)
        t0, stamp_ns = time.perf_counter(), time.time_ns()
        segmenter = loader.get()
        _check_format(format, ground)
        body = await read_body(request, max_bytes)
        try:
            image = await run_in_threadpool(decode_image, body, max_side)
        except ImageFileError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        t1 = time.perf_counter()
        masks = await run_in_threadpool(segmenter, image)
        timings = {"read_decode": (t1 - t0) * 1e3,
                   **{k: masks.timings_ms[k] for k in ("wait", "pre", "infer", "post")}}
        metrics.observe_stages(timings)
        if format == "json":
            timings["total"] = (time.perf_counter() - t0) * 1e3
            return JSONResponse(_summary(segmenter, masks, timings))
        if format == "grid":
            body = await run_in_threadpool(_grid, segmenter, ground, masks, stamp_ns)
        elif format == "overlay":
            body = await run_in_threadpool(_encode_overlay, segmenter, image, masks)
        else:
            body = await run_in_threadpool(_encode_png, masks.classes)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        headers = {"Server-Timing": _server_timing(timings)}
        if format == "grid":
            return JSONResponse(body, headers=headers)
        return Response(body, media_type=MEDIA[format], headers=headers)

    return app


def _check_format(format: str, ground: GroundGrid | None) -> None:  # noqa: A002
    """A 400 for an unknown ?format=, or format=grid without a camera file."""
    if format not in ("png", "json", "grid", "overlay"):
        raise HTTPException(400, f"format={format!r} is unknown: use format=png (the "
                                 "mask), format=json (histogram and timings), "
                                 "format=grid (the mask on the ground) or "
                                 "format=overlay (a JPEG of the classes drawn over it)")
    if format == "grid" and ground is None:
        raise HTTPException(400, "format=grid needs the camera's intrinsics and mount: "
                                 "start rtseg serve with --camera FILE")


def _labels(loader: Loader) -> dict | None:
    """The served model for the metrics' info (None while it loads)."""
    if (segmenter := loader.segmenter) is None:
        return None
    return {"name": segmenter.spec.name, "device": str(segmenter.backend.device),
            "input_size": "x".join(map(str, segmenter.spec.input_size)),
            "classes": str(len(segmenter.classes))}


def _server_timing(timings: dict) -> str:
    return ", ".join(f"{k};dur={v:.2f}" for k, v in timings.items())


def run_serve(cfg: ServeConfig) -> int:
    """Listen first (a busy port fails before the model loads), answer at once (503 while
    the model loads on a thread), serve until SIGINT/SIGTERM; returns the number of images
    segmented. A model that fails to load ends the server with its error."""
    import uvicorn

    from rtseg.camera_file import load_ground

    ground = load_ground(cfg.camera) if cfg.camera else None
    sock = listen_socket(cfg.bind, cfg.port, allow_remote=cfg.allow_remote)
    url = socket_url(sock)
    # logits upsampled before the argmax: the masks of rtseg predict
    loader = Loader(lambda: Segmenter(cfg.model, engine=cfg.engine, device=cfg.device,
                                      engine_cache=cfg.engine_cache, calib=cfg.calib,
                                      precision=cfg.precision, upsample="logits",
                                      drivable=cfg.drivable))
    app = create_app(loader, cfg.max_bytes, cfg.max_side, ground)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    loader.on_failure = lambda: setattr(server, "should_exit", True)
    loader.on_ready = lambda segmenter: log.info(
        "serving %s at %s/segment (Ctrl-C stops it)", segmenter.spec.name, url)
    with sock:
        log.info("listening at %s; loading %s (until it is open, /healthz answers 503 "
                 "loading)", url, cfg.model)
        loader.start()
        try:
            server.run(sockets=[sock])
        except StopRequested as stopped:  # uvicorn shut down, then passed the signal on
            stopped.detail = f"after {_calls(loader)} images"
            raise
        finally:
            if loader.segmenter is not None:
                loader.segmenter.close()
    if loader.error is not None:
        raise loader.error
    return _calls(loader)


def _calls(loader: Loader) -> int:
    return loader.segmenter.calls if loader.segmenter is not None else 0
