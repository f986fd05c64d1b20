"""ZeroMQ CURVE: only a subscriber with the node's public key (and, where the node lists
clients, an admitted key pair) receives anything. Real sockets, real key files."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from rtseg.client import MaskSubscriber
from rtseg.curve import write_keys
from rtseg.errors import RtsegError
from rtseg.protocol import DRIVABLE_CLASSES
from rtseg.stream.publisher import MaskPublisher

MASK = np.ones((4, 6), np.uint8)
RTSEG = [sys.executable, "-m", "rtseg"]


@pytest.fixture
def keys(tmp_path):
    """node, client and stranger key pairs; an admitted/ folder with the client's public key."""
    out = {name: write_keys(tmp_path / "keys", name) for name in ("node", "client", "stranger")}
    admitted = tmp_path / "admitted"
    admitted.mkdir()
    (admitted / "client.key").write_bytes(out["client"][0].read_bytes())
    return out, admitted


def receives(pub: MaskPublisher, sub: MaskSubscriber, seconds: float) -> bool:
    """Publish for up to `seconds`; True as soon as the subscriber got a mask."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pub.publish("cam/drivable", "drivable", MASK, seq=0, stamp_ns=1, frame_id="f",
                    classes=DRIVABLE_CLASSES, model="m")
        try:
            sub.recv(timeout_ms=50)
            return True
        except TimeoutError:
            continue
    return False


def test_keys_are_written_once(tmp_path):
    public, secret = write_keys(tmp_path, "node")
    assert public.name == "node.key" and secret.name == "node.key_secret"
    assert secret.stat().st_mode & 0o077 == 0  # the secret is the owner's only
    with pytest.raises(RtsegError, match="exists"):
        write_keys(tmp_path, "node")


def test_only_subscribers_with_the_server_key_receive(keys):
    (node_pub, node_secret), _, (stranger_pub, _) = (keys[0][k] for k in
                                                     ("node", "client", "stranger"))
    with MaskPublisher("tcp://127.0.0.1:*", curve_secret=node_secret) as pub:
        with MaskSubscriber(pub.endpoint, ["cam/drivable"], curve_server_key=node_pub) as ok:
            assert receives(pub, ok, 10)
        with MaskSubscriber(pub.endpoint, ["cam/drivable"]) as plain:
            assert not receives(pub, plain, 1.5)
        with MaskSubscriber(pub.endpoint, ["cam/drivable"],
                            curve_server_key=stranger_pub) as wrong:
            assert not receives(pub, wrong, 1.5)


def test_listed_clients_only(keys):
    pairs, admitted = keys
    node_pub, node_secret = pairs["node"]
    with MaskPublisher("tcp://127.0.0.1:*", curve_secret=node_secret,
                       curve_clients=str(admitted)) as pub:
        with MaskSubscriber(pub.endpoint, ["cam/drivable"], curve_server_key=node_pub,
                            curve_secret=pairs["client"][1]) as client:
            assert receives(pub, client, 10)
        with MaskSubscriber(pub.endpoint, ["cam/drivable"], curve_server_key=node_pub,
                            curve_secret=pairs["stranger"][1]) as stranger:
            assert not receives(pub, stranger, 1.5)
        with MaskSubscriber(pub.endpoint, ["cam/drivable"], curve_server_key=node_pub) as anon:
            assert not receives(pub, anon, 1.5)


def test_bad_key_files_are_clear_errors(tmp_path, keys):
    node_pub, _ = keys[0]["node"]
    with pytest.raises(RtsegError, match="does not exist"):
        MaskPublisher("tcp://127.0.0.1:*", curve_secret=str(tmp_path / "none.key_secret"))
    with pytest.raises(RtsegError, match="only a public key"):
        MaskPublisher("tcp://127.0.0.1:*", curve_secret=str(node_pub))
    junk = tmp_path / "junk.key"
    junk.write_text("not a certificate\n")
    with pytest.raises(RtsegError, match="not a ZeroMQ CURVE key file"):
        MaskSubscriber("tcp://127.0.0.1:9", ["a/drivable"], curve_server_key=str(junk))


@pytest.mark.slow
def test_cli_node_and_echo_with_curve(tmp_path, tiny_checkpoint):
    done = subprocess.run([*RTSEG, "keys", str(tmp_path / "k")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    endpoint = f"ipc://{tmp_path}/node.sock"
    node = subprocess.Popen([*RTSEG, "run", "--bind", endpoint, "--model",
                             str(tiny_checkpoint), "--device", "cpu", "--demo-size", "64x96",
                             "--curve-secret", str(tmp_path / "k" / "node.key_secret")],
                            stderr=subprocess.PIPE, text=True)
    try:
        echo = subprocess.run([*RTSEG, "echo", endpoint, "demo/drivable", "--count", "2",
                               "--timeout", "60", "--curve-server-key",
                               str(tmp_path / "k" / "node.key")],
                              capture_output=True, text=True, timeout=120)
        plain = subprocess.run([*RTSEG, "echo", endpoint, "demo/drivable", "--count", "1",
                                "--timeout", "3"], capture_output=True, text=True, timeout=60)
    finally:
        node.terminate()
        node.communicate(timeout=60)
    assert echo.returncode == 0, echo.stderr
    assert len(echo.stdout.splitlines()) == 2
    assert plain.returncode == 1 and "no message arrived" in plain.stderr


def test_view_record_and_foxglove_reach_a_node_that_lists_clients(tmp_path, keys):
    """The consumers take the node's public key and their own key pair (and without
    them hear nothing): rtseg view, rtseg record (API and command line), rtseg foxglove."""
    from foxglove_client import FoxgloveClient

    from rtseg.foxglove_bridge import FoxgloveBridge, FoxgloveConfig
    from rtseg.record import RecordConfig, record
    from rtseg.stream.publisher import FrameMeta
    from rtseg.view import ViewConfig, Viewer

    pairs, admitted = keys
    node_pub, node_secret = pairs["node"]
    curve = {"curve_server_key": str(node_pub), "curve_secret": str(pairs["client"][1])}
    stop = threading.Event()

    def publish(pub: MaskPublisher) -> None:
        seq = 0
        while not stop.wait(0.05):
            meta = FrameMeta(seq=seq, stamp_ns=time.time_ns(), frame_id="cam", model="m")
            pub.publish_frame("cam", MASK, MASK * 2, meta, class_names=["a", "b", "c"])
            seq += 1

    with MaskPublisher("tcp://127.0.0.1:*", curve_secret=node_secret,
                       curve_clients=str(admitted)) as pub:
        thread = threading.Thread(target=publish, args=(pub,), daemon=True)
        thread.start()
        try:
            with Viewer(ViewConfig(pub.endpoint, ("cam",), port=0, **curve)) as view:
                deadline = time.monotonic() + 60
                while view.overlays == 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert view.overlays > 0
            report = record(RecordConfig(pub.endpoint, ("cam/drivable",), str(tmp_path / "a.mcap"),
                                         count=2, timeout_s=60, **curve))
            assert report.counts == {"cam/drivable": 2}
            unkeyed = record(RecordConfig(pub.endpoint, ("cam/drivable",),
                                          str(tmp_path / "b.mcap"), timeout_s=1.5))
            assert unkeyed.counts == {}
            done = subprocess.run([*RTSEG, "record", pub.endpoint, "cam/classes", "--out",
                                   str(tmp_path / "c.mcap"), "--count", "2", "--timeout", "60",
                                   "--curve-server-key", curve["curve_server_key"],
                                   "--curve-secret", curve["curve_secret"]],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0 and "2 messages" in done.stderr, done.stderr
            pytest.importorskip("foxglove")
            with FoxgloveBridge(FoxgloveConfig(pub.endpoint, ("cam",), port=0, **curve)) as fox, \
                    FoxgloveClient(fox.url) as client:
                client.subscribe(["/cam/drivable"])
                assert len(client.collect({"/cam/drivable": 2})["/cam/drivable"]) == 2
        finally:
            stop.set()
            thread.join(timeout=10)
