"""`rtseg serve`: real HTTP requests against a real uvicorn server on a port it bound."""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import uvicorn

from rtseg import Segmenter
from rtseg.camera_file import load_ground
from rtseg.data import synthetic
from rtseg.httpbind import listen_socket, socket_url
from rtseg.serve import create_app

MAX_BYTES = 1_000_000
START_S = 60.0
DEMO_CAMERA = Path(__file__).resolve().parents[1] / "launch" / "cameras" / "demo.toml"


@pytest.fixture(scope="module")
def segmenter():
    """The demo model as `rtseg serve` opens it: rtseg predict's masks."""
    with Segmenter("demo", device="cpu", upsample="logits") as demo:
        yield demo


@pytest.fixture(scope="module")
def backend(segmenter):
    return segmenter.backend


@contextlib.contextmanager
def serving(app):
    """`app` on uvicorn in a thread, on a socket bound to port 0 first: a client of it."""
    sock = listen_socket("127.0.0.1", 0)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_S
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=socket_url(sock), timeout=60) as client:
            yield client
    finally:
        uv.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def server(segmenter):
    """The app of `rtseg serve` (no camera file) on uvicorn."""
    with serving(create_app(segmenter, max_bytes=MAX_BYTES)) as client:
        yield client, segmenter


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A generated 640x360 road scene, (360, 640, 3) uint8 BGR."""
    image, _ = synthetic.render_scene(np.random.default_rng(7), 360, 640)
    return np.ascontiguousarray(image[:, :, ::-1])


def encoded(image: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def test_a_jpeg_gives_a_png_class_mask_at_its_size(server, backend, frame):
    client, _ = server
    jpeg = encoded(frame)
    reply = client.post("/segment", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert "infer;dur=" in reply.headers["server-timing"]
    mask = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (360, 640) and mask.dtype == np.uint8
    from rtseg.stream.pipeline import Pipeline

    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(mask, Pipeline(backend)(decoded).classes)  # as `rtseg predict`


def test_the_overlay_is_the_viewers_drawing_as_jpeg(server, frame):
    client, segmenter = server
    png = encoded(frame, ".png")
    reply = client.post("/segment", params={"format": "overlay"}, content=png)
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
    assert "infer;dur=" in reply.headers["server-timing"]
    got = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
    drawn = segmenter.overlay(frame, segmenter(frame))
    assert got.shape == frame.shape
    # JPEG at quality 90 moves a pixel of these sharp-edged scenes by ~3-4 levels on
    # average; the undrawn frame is ~30 away
    off_drawing = np.abs(got.astype(int) - drawn).mean()
    assert off_drawing < 8.0 and off_drawing < np.abs(got.astype(int) - frame).mean() / 4


def test_a_png_body_and_the_json_summary(server, frame):
    client, _ = server
    reply = client.post("/segment", params={"format": "json"}, content=encoded(frame, ".png"))
    assert reply.status_code == 200
    summary = reply.json()
    assert (summary["width"], summary["height"]) == (640, 360)
    assert sum(summary["histogram"].values()) == 640 * 360
    assert list(summary["histogram"]) == list(synthetic.CLASSES)
    assert 0.05 < summary["drivable_fraction"] < 0.9
    assert {"read_decode", "wait", "pre", "infer", "post", "total"} <= set(summary["timings_ms"])


def test_model_and_health(server):
    client, _ = server
    assert client.get("/healthz").json()["status"] == "ok"
    model = client.get("/model").json()
    assert model["classes"] == list(synthetic.CLASSES) and model["input_size"] == [192, 352]
    assert model["drivable"] == ["road", "lane_marking"]
    assert model["palette"][0] == [128, 64, 128] and len(model["palette"]) == 7


def huge_png_header() -> bytes:
    """A PNG that claims 20000x20000 pixels (only its header: refused before decoding)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


@pytest.mark.parametrize("body, status, says", [
    (b"", 400, "empty"),
    (b"hello, this is text", 415, "not a JPEG or PNG"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", 400, "frame header"),
    (huge_png_header(), 413, "20000x20000"),
    (b"\x00" * (MAX_BYTES + 1), 413, "limit"),
])
def test_bad_bodies_are_4xx_with_a_message(server, body, status, says):
    client, _ = server
    reply = client.post("/segment", content=body)
    assert reply.status_code == status and says in reply.json()["detail"]


def test_corrupt_image_data_and_an_unknown_format(server, frame):
    client, _ = server
    jpeg = encoded(frame)
    broken = jpeg[:700] + bytes(range(256)) * 8
    reply = client.post("/segment", content=broken)
    assert reply.status_code == 400 and "truncated or corrupt" in reply.json()["detail"]
    reply = client.post("/segment", params={"format": "xml"}, content=jpeg)
    assert reply.status_code == 400 and "format=png" in reply.json()["detail"]
    reply = client.post("/segment", params={"format": "grid"}, content=jpeg)
    assert reply.status_code == 400 and "--camera FILE" in reply.json()["detail"]


def test_a_camera_file_gives_the_mask_on_the_ground(segmenter, frame):
    """?format=grid with a camera file: nav_msgs/OccupancyGrid JSON, the camera's grid of
    the very mask format=png answers for the same image."""
    ground = load_ground(DEMO_CAMERA)
    png = encoded(frame, ".png")
    with serving(create_app(segmenter, ground=ground)) as client:
        classes = client.post("/segment", content=png)
        reply = client.post("/segment", params={"format": "grid"}, content=png)
    assert reply.status_code == 200 and "infer;dur=" in reply.headers["server-timing"]
    mask = cv2.imdecode(np.frombuffer(classes.content, np.uint8), cv2.IMREAD_UNCHANGED)
    drivable_ids = [segmenter.classes.index(name) for name in segmenter.drivable_classes]
    expected = ground.occupancy(np.isin(mask, drivable_ids).astype(np.uint8))
    grid = reply.json()
    rows, cols = ground.grid.shape
    assert (grid["info"]["height"], grid["info"]["width"]) == (rows, cols)
    assert grid["info"]["resolution"] == ground.grid.resolution
    assert grid["info"]["origin"]["position"] == {"x": ground.grid.x_min,
                                                  "y": ground.grid.y_min, "z": 0.0}
    assert grid["header"]["frame_id"] == "base_link"
    assert abs(grid["header"]["stamp"]["sec"] - time.time()) < 600
    np.testing.assert_array_equal(np.array(grid["data"], np.int8).reshape(rows, cols), expected)
    assert {0, 100} <= set(grid["data"])


def test_concurrent_requests_all_answer_the_same_mask(server, frame):
    client, segmenter = server
    jpeg, before = encoded(frame), segmenter.calls

    def one(_):
        reply = client.post("/segment", content=jpeg)
        return reply.status_code, reply.content

    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(one, range(12)))
    assert {status for status, _ in replies} == {200}
    assert len({content for _, content in replies}) == 1
    assert segmenter.calls - before == 12


def test_a_busy_port_is_one_line_naming_it():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "rtseg", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"rtseg: error: port {port} is in use on 127.0.0.1: stop the program holding it or "
        "pick another with --port"]


def test_a_missing_camera_file_is_one_line_before_listening(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rtseg", "serve", "--port", "0", "--camera",
                           str(tmp_path / "front.toml")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot read camera file" in done.stderr and "front.toml" in done.stderr


@pytest.mark.slow
def test_engine_openvino_serves_the_compiled_engine_it_was_asked_for(tmp_path, frame):
    """`rtseg serve --engine openvino --precision fp32` compiles the checkpoint once into
    --engine-cache (parity-gated), then answers with that engine's masks: GET /model names
    it, and its masks agree with the eager checkpoint's as the parity gate asks."""
    pytest.importorskip("openvino")
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "-v", "serve", "--port", "0",
                             "--device", "cpu", "--engine", "openvino", "--precision", "fp32",
                             "--engine-cache", str(cache)],
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    seen: list[str] = []
    try:
        while not any("/segment (Ctrl-C" in line for line in seen):
            assert proc.poll() is None, "".join(seen)
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        url = next(x for x in seen if "/segment (Ctrl-C" in x).split(" at ", 1)[1].split()[0]
        with httpx.Client(timeout=60) as client:
            name = client.get(url.replace("/segment", "/model")).json()["name"]
            reply = client.post(url, content=encoded(frame, ".png"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert name.endswith("/openvino-fp32"), name
    assert any("compiling once" in line for line in seen)
    assert len(list(cache.glob("*-openvino-*.key.json"))) == 1
    mask = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_UNCHANGED)
    with Segmenter("demo", device="cpu", upsample="logits") as eager:
        agree = (mask == eager(frame).classes).mean()
    assert mask.shape == (360, 640) and agree >= 0.99, agree  # the parity gate's criterion


def test_a_precision_without_a_compiled_engine_is_one_line():
    done = subprocess.run([sys.executable, "-m", "rtseg", "serve", "--port", "0",
                           "--precision", "bf16"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "--engine openvino" in done.stderr


def test_connections_accepted_on_the_listening_socket_send_without_delay():
    """asyncio (uvicorn's server) turns Nagle's algorithm off only on sockets made for
    IPPROTO_TCP; on any other, every response's body waited for the client's delayed ACK
    of its headers (~40 ms per request on Linux)."""
    import asyncio

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                conn = transport.get_extra_info("socket")
                got.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen_socket("127.0.0.1", 0)
        server = await loop.create_server(Probe, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            try:
                return await asyncio.wait_for(got, 30)
            finally:
                writer.close()

    assert asyncio.run(accepted_nodelay()) != 0


@contextlib.contextmanager
def held_loader():
    """A started Loader whose demo Segmenter opens only once the test sets `release`;
    yields (loader, release, ready), `ready` set once it is open; closes it after."""
    from rtseg.serve import Loader

    release, ready = threading.Event(), threading.Event()

    def slow_open() -> Segmenter:
        assert release.wait(60)
        return Segmenter("demo", device="cpu", upsample="logits")

    loader = Loader(slow_open)
    loader.on_ready = lambda _: ready.set()
    try:
        yield loader.start(), release, ready
    finally:
        release.set()
        if loader.segmenter is not None:
            loader.segmenter.close()


def test_while_the_model_loads_the_server_answers_503_then_serves(frame):
    """The server answers from the moment it listens: /healthz a 503 "loading", /segment
    and /model a 503 with Retry-After, until the Segmenter is open; then the masks."""
    with held_loader() as (loader, release, ready):
        with serving(create_app(loader, max_bytes=MAX_BYTES)) as client:
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json() == {"status": "loading"}
            busy = client.post("/segment", content=encoded(frame))
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert "loading" in busy.json()["detail"]
            assert client.get("/model").status_code == 503
            release.set()
            assert ready.wait(60)
            assert client.get("/healthz").json()["status"] == "ok"
            reply = client.post("/segment", content=encoded(frame))
            assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"


def test_a_model_that_fails_to_load_ends_the_server_with_one_line(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    done = subprocess.run([sys.executable, "-m", "rtseg", "serve", "--port", "0", "--model",
                           str(broken)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rtseg: error: ") and "broken.pt is not an rtseg checkpoint" in last


def test_ctrl_c_while_the_engine_compiles_exits_0_with_one_summary(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "serve", "--port", "0",
                             "--device", "cpu", "--engine", "onnx", "--engine-cache",
                             str(tmp_path)], stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert "listening at http://127.0.0.1:" in first and "loading demo" in first, first
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in rest
    assert rest.strip().splitlines()[-1].startswith("rtseg serve: stopped by SIGINT")
