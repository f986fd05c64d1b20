"""`rtseg view`: a real node, the real viewer, a real browser and real HTTP clients."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest
from browser import CHROMIUM, chromium_page, overlay_png, wait_for_new_seq, wait_for_other_overlay
from conftest import REPO
from live_node import demo_node  # noqa: I001  (tests/ is on sys.path)

from rtseg.camera_file import load_ground
from rtseg.data import synthetic
from rtseg.stream.publisher import FrameMeta, MaskPublisher
from rtseg.view import BOUNDARY, ViewConfig, Viewer

DEADLINE_S = 90.0
CLASS_NAMES = synthetic.CLASSES


@pytest.fixture(scope="module")
def viewer():
    """`rtseg view` on a free port, watching a real demo node that publishes images."""
    with demo_node(image_topic=True) as endpoint:
        with Viewer(ViewConfig(endpoint=endpoint, names=("demo",), port=0)) as view:
            yield view


def wait_until(condition, what: str, timeout_s: float = DEADLINE_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def get(url: str, path: str, timeout_s: float = 30.0) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type"), reply.read()
    finally:
        conn.close()


def read_parts(url: str, path: str, count: int) -> list[bytes]:
    """The first `count` JPEG parts of a multipart/x-mixed-replace stream."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE_S)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        assert reply.status == 200
        assert reply.getheader("Content-Type") == (
            f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        jpegs = []
        for _ in range(count):
            assert reply.readline() == f"--{BOUNDARY}\r\n".encode()
            headers = {}
            while (line := reply.readline().decode()) != "\r\n":
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            jpegs.append(reply.read(int(headers["content-length"])))
            assert reply.readline() == b"\r\n"
        return jpegs
    finally:
        conn.close()


def test_mjpeg_streams_overlays_of_the_live_frames(viewer):
    jpegs = read_parts(viewer.url, "/demo/overlay.mjpg", 3)
    for jpeg in jpegs:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (360, 640, 3)
    assert len(set(jpegs)) == 3  # three different frames, not one repeated
    status, kind, still = get(viewer.url, "/demo/overlay.jpg")
    assert status == 200 and kind == "image/jpeg" and still.startswith(b"\xff\xd8")
    info = json.loads(get(viewer.url, "/demo/info.json")[2])
    assert info["over_image"] is True and info["seq"] >= 0
    assert [c["name"] for c in info["legend"]] == list(CLASS_NAMES)
    wait_until(lambda: json.loads(get(viewer.url, "/demo/info.json")[2])["fps"] is not None,
               "the node's status to reach the viewer")


def test_unknown_pages_are_404_with_a_hint(viewer):
    status, _, body = get(viewer.url, "/rear/overlay.mjpg")
    assert status == 404 and b"/NAME/overlay.mjpg" in body and b"demo" in body


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install the "
                    "chromium package (`.ci/run` does) to run the browser test")
def test_browser_shows_the_live_overlay_and_the_legend(viewer):
    with chromium_page() as page:
        page.goto(viewer.url + "/")
        first_seq = wait_for_new_seq(page, "demo", None)
        first = overlay_png(page, "demo")
        second_seq = wait_for_new_seq(page, "demo", first_seq)
        second = wait_for_other_overlay(page, "demo", first)
        assert first != second and second_seq != first_seq
        legend = page.locator('section[data-name="demo"] ul.legend li')
        legend.nth(len(CLASS_NAMES) - 1).wait_for(timeout=30_000)
        assert legend.all_inner_texts() == list(CLASS_NAMES)
        assert legend.first.get_attribute("data-rgb") == "#804080"  # road, Cityscapes colour
        section = page.locator('section[data-name="demo"]')
        assert section.locator('[data-key="input"]').inner_text() == "image + masks"
        page.wait_for_function("""() => /^[0-9.]+$/.test(document.querySelector(
            'section[data-name="demo"] [data-key="fps"]').textContent)""", timeout=30_000)


def publish_scenes(publisher: MaskPublisher, stop: threading.Event) -> None:
    """Masks only (no image topic): generated scenes' labels as the classes mask."""
    rng, seq = np.random.default_rng(3), 0
    lut = np.zeros(256, np.uint8)
    lut[[CLASS_NAMES.index(n) for n in synthetic.DRIVABLE]] = 1
    while not stop.is_set():
        _, label = synthetic.render_scene(rng, 90, 160)
        meta = FrameMeta(seq=seq, stamp_ns=time.time_ns(), frame_id="scenes", model="labels")
        publisher.publish_frame("scenes", lut[label], label, meta, class_names=CLASS_NAMES)
        seq += 1
        stop.wait(0.05)


def test_without_an_image_topic_the_coloured_mask_alone():
    stop = threading.Event()
    with MaskPublisher("tcp://127.0.0.1:*") as publisher:
        thread = threading.Thread(target=publish_scenes, args=(publisher, stop), daemon=True)
        thread.start()
        try:
            with Viewer(ViewConfig(publisher.endpoint, ("scenes",), port=0)) as view:
                wait_until(lambda: view.cameras["scenes"].version >= 2, "two overlays")
                status, _, jpeg = get(view.url, "/scenes/overlay.jpg")
                info = json.loads(get(view.url, "/scenes/info.json")[2])
        finally:
            stop.set()
            thread.join(timeout=10)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and image.shape == (90, 160, 3)
    assert info["over_image"] is False and len(info["legend"]) == len(CLASS_NAMES)


@pytest.mark.parametrize("command", ["view", "foxglove"])  # the page; the Foxglove bridge
def test_a_busy_port_is_one_line_naming_it(command):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "rtseg", command, "tcp://127.0.0.1:5555",
                               "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"rtseg: error: port {port} is in use on 127.0.0.1: stop the program holding it or "
        "pick another with --port"]


def test_the_viewer_recorder_and_info_import_no_torch():
    code = ("import sys, rtseg.view, rtseg.record, rtseg.compose, rtseg.bag_info, foxglove, "
            "rtseg.foxglove_bridge; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["False"], done.stderr


def _scene() -> tuple[np.ndarray, np.ndarray]:
    _, label = synthetic.render(synthetic.random_params(np.random.default_rng(0)), 360, 640)
    return label, synthetic.drivable_mask(label)


SCENE = _scene()  # (360, 640) uint8 classes and drivable mask of one generated scene


@contextlib.contextmanager
def one_scene(names: tuple[str, ...]):
    """A publisher sending SCENE as every camera of `names`, again and again (every 0.05
    s, each camera's frame stamped as it is sent); yields its endpoint."""
    label, drivable = SCENE
    stop = threading.Event()

    def publish(publisher: MaskPublisher) -> None:
        seq = 0
        while not stop.is_set():
            for name in names:
                meta = FrameMeta(seq=seq, stamp_ns=time.time_ns(), frame_id=name, model="x")
                publisher.publish_frame(name, drivable, label, meta, class_names=CLASS_NAMES)
            seq += 1
            stop.wait(0.05)

    with MaskPublisher("tcp://127.0.0.1:*") as publisher:
        thread = threading.Thread(target=publish, args=(publisher,), daemon=True)
        thread.start()
        try:
            yield publisher.endpoint
        finally:
            stop.set()
            thread.join(timeout=10)


def test_with_a_camera_file_the_grid_from_above_is_beside_the_overlay():
    """`--camera FILE`: the picture is the overlay, then on its right the drivable mask's
    grid seen from above (rtseg.ground_draw.grid_picture), at the overlay's height."""
    from rtseg.compose import FrameParts, draw
    from rtseg.ground_draw import grid_picture
    from rtseg.protocol import decode, encode

    camera = REPO / "launch" / "cameras" / "demo.toml"
    label, drivable = SCENE
    with one_scene(("scenes",)) as endpoint:
        cfg = ViewConfig(endpoint, ("scenes",), port=0, cameras=(str(camera),))
        with Viewer(cfg) as view:
            wait_until(lambda: view.cameras["scenes"].version >= 2, "two overlays")
            status, _, jpeg = get(view.url, "/scenes/overlay.jpg")
    got = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    ground = load_ground(camera)
    picture = grid_picture(ground.grid, ground.occupancy(drivable), 360)
    masks = {kind: decode(encode(f"scenes/{kind}", kind, mask, seq=0, stamp_ns=1,
                                 frame_id="scenes", classes=names, model="x"))
             for kind, mask, names in (("drivable", drivable, ["not_drivable", "drivable"]),
                                       ("classes", label, CLASS_NAMES))}
    overlay = draw(FrameParts(0, 1, masks)).bgr
    assert status == 200 and got.shape == (360, 640 + picture.shape[1], 3)
    assert np.abs(got[:, :640] - overlay).mean() < 6  # JPEG at quality 80
    assert np.abs(got[:, 640:] - picture).mean() < 6
    assert 0.1 < (picture == (70, 170, 60)).all(axis=2).mean() < 0.9  # road, free


def test_with_costs_the_grid_from_above_is_the_classes_costs():
    """A camera file with [costs]: the picture beside the overlay is the classes mask's
    grid of costs; a frame without that mask is shown alone."""
    from rtseg.compose import FrameParts, draw
    from rtseg.ground import GroundGrid
    from rtseg.ground_draw import grid_picture
    from rtseg.protocol import decode, encode
    from rtseg.view import grid_of_frame, with_grid

    plain = load_ground(REPO / "launch" / "cameras" / "demo.toml")
    ground = GroundGrid(plain.camera, plain.grid, costs=(("road", 0), ("sidewalk", 50)))
    label, _ = SCENE
    classes = decode(encode("demo/classes", "classes", label, seq=0, stamp_ns=1,
                            frame_id="demo", classes=CLASS_NAMES, model="x"))
    parts = FrameParts(0, 1, {"classes": classes})
    composite = draw(parts)
    header, values = grid_of_frame(ground, parts)
    shown = with_grid(composite, ground.grid, values).bgr
    costs = ground.cost_grid(label, CLASS_NAMES)
    assert {0, 50, 100} <= set(np.unique(costs).tolist()) and header.kind == "classes"
    np.testing.assert_array_equal(values, costs)
    np.testing.assert_array_equal(shown[:, 640:], grid_picture(ground.grid, costs, 360))
    assert grid_of_frame(ground, FrameParts(0, 1, {"drivable": classes})) is None


@pytest.fixture(scope="module")
def fused_view(tmp_path_factory):
    """`rtseg view --fuse` of two cameras sending SCENE, "ahead" with the demo's camera
    file and "left" with it turned 20 deg left: (the viewer, the two files), once both
    cameras were shown (a camera's grid goes into the fusion before its own picture)."""
    plain = REPO / "launch" / "cameras" / "demo.toml"
    turned = tmp_path_factory.mktemp("fuse") / "turned.toml"
    turned.write_text(plain.read_text().replace("yaw_deg = 0.0", "yaw_deg = 20.0"))
    with one_scene(("ahead", "left")) as endpoint:
        cfg = ViewConfig(endpoint, ("ahead", "left"), port=0, fuse=True,
                         cameras=(f"ahead={plain}", f"left={turned}"))
        with Viewer(cfg) as view:
            wait_until(lambda: min(view.cameras[n].version for n in ("ahead", "left")),
                       "both cameras")
            yield view, (plain, turned)


def fused_picture(files) -> np.ndarray:
    """(480, W, 3) uint8: the picture of SCENE's drivable grids fused for camera `files`."""
    from rtseg.grid_fusion import fuse
    from rtseg.ground_draw import grid_picture

    grounds = [load_ground(f) for f in files]
    return grid_picture(grounds[0].grid, fuse([g.occupancy(SCENE[1]) for g in grounds]), 480)


def test_fuse_shows_the_cameras_grids_fused_from_above(fused_view):
    """`--fuse`: two cameras with camera files get one more picture, /grid/, their grids
    fused (rtseg.grid_fusion) from above: more of the ground seen than by either camera,
    and its legend the grid's colours."""
    from rtseg.grid_fusion import fuse
    from rtseg.ground_draw import grid_picture

    view, files = fused_view
    status, kind, jpeg = get(view.url, "/grid/overlay.jpg")
    info = json.loads(get(view.url, "/grid/info.json")[2])
    page = get(view.url, "/")[2].decode()
    grids = [load_ground(f).occupancy(SCENE[1]) for f in files]
    spec = load_ground(files[0]).grid
    want = fused_picture(files)
    got = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert (status, kind) == (200, "image/jpeg") and got.shape == want.shape
    assert np.abs(got - want).mean() < 6  # JPEG at quality 80
    seen = [(g != -1).mean() for g in grids]  # 0.74 and 0.51 of the grid; fused 0.81
    assert (fuse(grids) != -1).mean() > max(seen) + 0.05
    for grid in grids:  # neither camera's own picture
        assert np.abs(got - grid_picture(spec, grid, 480)).mean() > 3 * np.abs(got - want).mean()
    assert [c["name"] for c in info["legend"]] == ["free", "occupied", "unknown"]
    assert info["shows"] == "grids of ahead, left" and info["seq"] >= 1
    assert 'data-name="grid"' in page and 'data-name="left"' in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install the "
                    "chromium package (`.ci/run` does) to run the browser test")
def test_browser_shows_the_fused_grid_with_its_legend(fused_view):
    view, files = fused_view
    with chromium_page() as page:
        page.goto(view.url + "/")
        wait_for_new_seq(page, "grid", None)
        section = page.locator('section[data-name="grid"]')
        legend = section.locator("ul.legend li")
        legend.nth(2).wait_for(timeout=30_000)
        assert legend.all_inner_texts() == ["free", "occupied", "unknown"]
        assert section.locator('[data-key="input"]').inner_text() == "grids of ahead, left"
        shot = cv2.imdecode(np.frombuffer(overlay_png(page, "grid"), np.uint8),
                            cv2.IMREAD_COLOR).astype(int)
        want = fused_picture(files)
        assert shot.shape == want.shape and np.abs(shot - want).mean() < 6


def test_fuse_needs_two_camera_files_and_no_camera_called_grid():
    from rtseg.errors import RtsegError

    camera = str(REPO / "launch" / "cameras" / "demo.toml")

    with pytest.raises(RtsegError, match="two or more .*got 1"):
        Viewer(ViewConfig("tcp://127.0.0.1:5555", ("demo",), port=0, fuse=True,
                          cameras=(camera,)))
    with pytest.raises(RtsegError, match="a camera may not be called grid"):
        Viewer(ViewConfig("tcp://127.0.0.1:5555", ("demo", "grid"), port=0, fuse=True,
                          cameras=(camera,)))


def test_the_viewers_connections_send_without_delay(viewer):
    """Each connection the viewer serves has Nagle's algorithm off: with it, a kept-alive
    request's body (written after its headers) waited for the client's delayed ACK, ~40 ms
    for every info.json poll and still."""
    from rtseg.httpbind import listen_socket

    with contextlib.closing(listen_socket("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()[:2], timeout=30) as client:
        conn, address = listener.accept()
        with conn:
            client.sendall(b"GET /demo/info.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            viewer._server.finish_request(conn, address)  # what its request threads run
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert client.recv(64).startswith(b"HTTP/1.1 200")
