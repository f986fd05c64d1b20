"""MaskPublisher, MaskSubscriber and echo over real ZeroMQ sockets on random loopback ports."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import zmq

from rtseg.client import MaskSubscriber
from rtseg.echo import echo
from rtseg.errors import RtsegError
from rtseg.protocol import DRIVABLE_CLASSES, ProtocolError, encode
from rtseg.stream.publisher import ZERO_COPY_BYTES, MaskPublisher

pytestmark = pytest.mark.timeout(20)

LOCAL = "tcp://127.0.0.1:*"
DRIVABLE = np.zeros((4, 8), np.uint8)
DRIVABLE[:, :2] = 1  # 25 % drivable
CLASSES = ("road", "sidewalk", "car", "person")
CLASS_MAP = np.zeros((4, 8), np.uint8)
CLASS_MAP[1], CLASS_MAP[2] = 2, 255  # two classes present (0 and 2), plus "no prediction"


def send_drivable(pub: MaskPublisher, seq: int, topic: str = "cam0/drivable", **kw) -> bool:
    meta = {"stamp_ns": time.time_ns(), "frame_id": "camera0", "classes": DRIVABLE_CLASSES,
            "model": "test@0000", "latency_ms": {"total": 12.5}}
    meta.update(kw)
    return pub.publish(topic, "drivable", DRIVABLE, seq=seq, **meta)


def send_classes(pub: MaskPublisher, seq: int) -> bool:
    return pub.publish("cam0/classes", "classes", CLASS_MAP, seq=seq, stamp_ns=time.time_ns(),
                       frame_id="camera0", classes=CLASSES, model="test@0000")


WARM_UP_END = 1_000_000  # the seq of warm_up's last message, far from the tests' own


def warm_up(pub: MaskPublisher, sub: MaskSubscriber, topics=("cam0/drivable",)) -> None:
    """Publish until every topic got through (ZeroMQ's slow joiner), then one last message
    per topic (seq WARM_UP_END) and read up to it: the connection keeps the order, so no
    warm-up message is left to arrive after this returns, however loaded the machine."""
    waiting, deadline = set(topics), time.monotonic() + 5
    while waiting and time.monotonic() < deadline:
        for topic in topics:
            send_drivable(pub, 0, topic)
        try:
            waiting.discard(sub.recv(timeout_ms=20)[0].topic)
        except TimeoutError:
            continue
    assert not waiting, f"subscription to {waiting} never reached the publisher"
    for topic in topics:
        send_drivable(pub, WARM_UP_END, topic)
    ends = set(topics)
    while ends:
        header, _ = sub.recv(timeout_ms=10000)
        if header.seq == WARM_UP_END:
            ends.discard(header.topic)


@pytest.fixture
def pub() -> Iterator[MaskPublisher]:
    """A publisher queueing 100 messages per subscriber: ZeroMQ learns that a subscriber
    has read its queue only from time to time, so at the node's default of 4 a few sends
    right after the warm-up's can be dropped for a subscriber that reads everything."""
    with MaskPublisher(LOCAL, hwm=100) as publisher:
        yield publisher


# ------------------------------------------------------------------------ MaskSubscriber


def test_subscriber_receives_masks(pub):
    with MaskSubscriber(pub.endpoint, ["cam0/drivable"], timeout_ms=1000) as sub:
        warm_up(pub, sub)
        assert send_drivable(pub, 41, stamp_ns=123, encoding="bits")
        header, mask = sub.recv()
    np.testing.assert_array_equal(mask, DRIVABLE)
    assert (header.topic, header.seq, header.stamp_ns, header.encoding) == (
        "cam0/drivable", 41, 123, "bits")
    assert (header.width, header.height, header.latency_ms) == (8, 4, {"total": 12.5})


def test_large_masks_sent_zero_copy_arrive_intact(pub):
    """1080p masks (over ZERO_COPY_BYTES: ZeroMQ holds each frame's bytes, no copy), each
    different, published back to back while their source array is rewritten."""
    rng = np.random.default_rng(3)
    mask = np.empty((1080, 1920), np.uint8)
    assert mask.nbytes >= ZERO_COPY_BYTES
    sent = []
    with MaskSubscriber(pub.endpoint, ["cam0/classes"], timeout_ms=5000) as sub:
        warm_up(pub, sub, ("cam0/classes",))
        for seq in range(1, 6):
            mask[:] = rng.integers(0, len(CLASSES), mask.shape, dtype=np.uint8)
            sent.append(mask.copy())
            assert pub.publish("cam0/classes", "classes", mask, seq=seq, stamp_ns=seq,
                               frame_id="camera0", classes=CLASSES, model="test@0000")
            mask[:] = 0
        received = [sub.recv() for _ in sent]
    assert [header.seq for header, _ in received] == [1, 2, 3, 4, 5]
    for (_, got), want in zip(received, sent):
        np.testing.assert_array_equal(got, want)


def test_iteration_stops_after_timeout(pub):
    with MaskSubscriber(pub.endpoint, "cam0/drivable", timeout_ms=200) as sub:
        warm_up(pub, sub)
        for seq in (1, 2, 3):
            send_drivable(pub, seq)
        start = time.monotonic()
        assert [header.seq for header, _ in sub] == [1, 2, 3]
        assert time.monotonic() - start >= 0.19


def witnessed(pub: MaskPublisher, topics, last: dict[str, int]) -> MaskSubscriber:
    """A plain subscriber that sees every mask; `wait()` returns once it has the seq in
    `last` of every topic, i.e. the burst has crossed loopback (to it and, in the same
    moment, to the conflating subscriber under test)."""
    witness = MaskSubscriber(pub.endpoint, list(topics), timeout_ms=5000)
    warm_up(pub, witness, tuple(topics))

    def wait() -> None:
        pending = dict(last)
        while pending:
            header, _ = witness.recv()
            if pending.get(header.topic) == header.seq:
                del pending[header.topic]

    witness.wait = wait
    return witness


def newest_after_burst(sub: MaskSubscriber, want: set[tuple[str, int]]) -> list:
    """Receive until every (topic, seq) in `want` arrived; what arrived, in order. With
    CONFLATE a mask that arrived late may still come first: then the newest follows."""
    got = []
    while not want <= set(got):
        header, _ = sub.recv(timeout_ms=5000)
        got.append((header.topic, header.seq))
    return got


def test_latest_only_gives_newest(pub):
    with MaskSubscriber(pub.endpoint, ["cam0/drivable"], latest_only=True) as sub:
        warm_up(pub, sub)
        witness = witnessed(pub, ["cam0/drivable"], {"cam0/drivable": 20})
        with witness:
            for seq in range(1, 21):
                send_drivable(pub, seq)
            witness.wait()
        got = newest_after_burst(sub, {("cam0/drivable", 20)})
        assert len(got) < 20 and got[-1] == ("cam0/drivable", 20)  # older ones were dropped
        with pytest.raises(TimeoutError):
            sub.recv(timeout_ms=100)


def test_latest_only_keeps_newest_per_topic(pub):
    topics = ("a/drivable", "b/drivable")
    with MaskSubscriber(pub.endpoint, topics, latest_only=True) as sub:
        warm_up(pub, sub, topics)
        witness = witnessed(pub, topics, {"a/drivable": 10, "b/drivable": 110})
        with witness:
            for seq in range(1, 11):
                send_drivable(pub, seq, "a/drivable")
                send_drivable(pub, 100 + seq, "b/drivable")
            witness.wait()
        got = newest_after_burst(sub, {("a/drivable", 10), ("b/drivable", 110)})
        assert len(got) < 20  # conflated per topic
        with pytest.raises(TimeoutError):
            sub.recv(timeout_ms=100)


def test_recv_timeout_raises_timeout_error():
    with MaskSubscriber("tcp://127.0.0.1:9", ["cam0/drivable"], timeout_ms=5000) as sub:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="no mask on .*cam0/drivable.* within 50 ms"):
            sub.recv(timeout_ms=50)
        assert 0.04 <= time.monotonic() - start < 1.0


def test_malformed_frame_raises_and_next_is_received(pub):
    with MaskSubscriber(pub.endpoint, ["cam0/drivable"], timeout_ms=1000) as sub:
        warm_up(pub, sub)
        pub.send_frame(b"cam0/drivable\x00\xc1")
        send_drivable(pub, 5)
        with pytest.raises(ProtocolError, match="cam0/drivable: payload is not valid"):
            sub.recv()
        assert sub.recv()[0].seq == 5


def test_subscriber_size_limit(pub):
    with MaskSubscriber(pub.endpoint, ["cam0/drivable"], timeout_ms=1000, max_width=7) as sub:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            send_drivable(pub, 0)
            try:
                sub.recv(timeout_ms=20)
            except TimeoutError:
                continue
            except ProtocolError as exc:
                assert "8x4 exceeds the limit 7x8192" in str(exc)
                return
        pytest.fail("no frame arrived")


def test_subscriber_argument_errors():
    with pytest.raises(ValueError, match="at least one topic"):
        MaskSubscriber("tcp://127.0.0.1:9", [])
    with pytest.raises(RtsegError, match="cannot connect to 'nonsense'"):
        MaskSubscriber("nonsense", ["cam0/drivable"])
    sub = MaskSubscriber("tcp://127.0.0.1:9", ["cam0/drivable"])
    sub.close()
    sub.close()
    with pytest.raises(RuntimeError, match="closed"):
        sub.recv(timeout_ms=10)


# -------------------------------------------------------------------------- MaskPublisher


def test_publisher_port_in_use_names_the_port():
    other = zmq.Context.instance().socket(zmq.PUB)
    try:
        port = other.bind_to_random_port("tcp://127.0.0.1")
        with pytest.raises(RtsegError, match=rf"port {port} is in use.*--bind tcp://127\.0\.0\.1"):
            MaskPublisher(f"tcp://127.0.0.1:{port}")
    finally:
        other.close(linger=0)


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://*:5555",
                                      "tcp://192.168.1.10:5555", "tcp://eth0:5555"])
def test_publisher_refuses_non_loopback_without_allow_remote(endpoint):
    with pytest.raises(RtsegError, match=re.escape(endpoint) + ".*--allow-remote"):
        MaskPublisher(endpoint)


def test_publisher_binds_all_interfaces_with_allow_remote():
    with MaskPublisher("tcp://0.0.0.0:*", allow_remote=True) as publisher:
        assert re.fullmatch(r"tcp://0\.0\.0\.0:\d+", publisher.endpoint)


@pytest.mark.parametrize("endpoint", ["tcp://localhost:*", "tcp://127.0.0.1:*",
                                      "tcp://127.0.0.2:*"])
def test_publisher_binds_loopback(endpoint):
    with MaskPublisher(endpoint) as publisher:
        assert re.fullmatch(r"tcp://127\.0\.0\.[12]:\d+", publisher.endpoint)


@pytest.mark.parametrize("endpoint", ["nonsense", "tcp://127.0.0.1", "tcp://127.0.0.1:99999",
                                      "tcp://127.0.0.1:http", "bogus://127.0.0.1:5"])
def test_publisher_bad_endpoint_names_it(endpoint):
    with pytest.raises(RtsegError, match=re.escape(endpoint)):
        MaskPublisher(endpoint, allow_remote=endpoint.startswith("bogus"))


def test_publisher_ipc_endpoint(tmp_path):
    endpoint = f"ipc://{tmp_path}/masks.sock"
    with MaskPublisher(endpoint) as publisher, MaskSubscriber(endpoint, ["cam0/drivable"]) as sub:
        assert publisher.endpoint == endpoint
        warm_up(publisher, sub)
        send_drivable(publisher, 3)
        assert sub.recv(timeout_ms=1000)[0].seq == 3


def test_publisher_bound_late_removes_only_its_own_socket_file(tmp_path):
    """`bind=False` (how the node enters it on its exit stack before binding): no socket
    file until `bind()`, one bind only; closing an unbound publisher leaves a file at that
    path alone (another node's), closing a bound one removes it."""
    path = tmp_path / "masks.sock"
    endpoint = f"ipc://{path}"
    other = MaskPublisher(endpoint)  # another node, already there
    late = MaskPublisher(endpoint, bind=False)
    late.close()
    assert path.exists()  # not late's to remove
    other.close()
    assert not path.exists()
    with MaskPublisher(endpoint, bind=False) as publisher:
        assert not path.exists()
        publisher.bind()
        assert path.exists() and publisher.endpoint == endpoint
        with pytest.raises(RtsegError, match="already bound"):
            publisher.bind()
        with MaskSubscriber(endpoint, ["cam0/drivable"]) as sub:
            warm_up(publisher, sub)
            send_drivable(publisher, 5)
            assert sub.recv(timeout_ms=1000)[0].seq == 5
    assert not path.exists()


def test_publisher_never_blocks(pub):
    mask = np.ones((480, 640), np.uint8)
    slow = zmq.Context.instance().socket(zmq.SUB)  # connected, subscribed, never reads
    slow.setsockopt(zmq.RCVHWM, 1)
    slow.setsockopt(zmq.SUBSCRIBE, b"")
    slow.connect(pub.endpoint)
    try:
        time.sleep(0.1)
        start = time.monotonic()
        results = [send_drivable(pub, seq) for seq in range(500)]
        results += [pub.publish("big/drivable", "drivable", mask, seq=seq, stamp_ns=0,
                                frame_id="f", classes=DRIVABLE_CLASSES, model="m")
                    for seq in range(500)]
        elapsed = time.monotonic() - start
    finally:
        slow.close(linger=0)
    assert elapsed < 5.0, f"1000 publishes took {elapsed:.1f} s"
    assert pub.sent + pub.dropped == 1000
    assert results.count(True) == pub.sent


ROOMY_LINGER_MS = 30_000  # the default 2 s is policy; the tests check the mechanism


def test_closing_sends_what_is_queued_first():
    """A stopping node's last messages reach a subscriber: close() waits for the queue
    (with linger 0 ZeroMQ dropped the last of such a burst 20 times in 20)."""
    mask = np.ones((360, 640), np.uint8)
    publisher = MaskPublisher(LOCAL, hwm=200, linger_ms=ROOMY_LINGER_MS)
    with MaskSubscriber(publisher.endpoint, ["cam0/drivable", "big/drivable"],
                        timeout_ms=10000) as sub:
        warm_up(publisher, sub)
        burst = [encode("big/drivable", "drivable", mask, seq=seq, stamp_ns=0, frame_id="f",
                        classes=DRIVABLE_CLASSES, model="m") for seq in range(80)]
        for frame in burst:  # encoded beforehand: sent faster than ZeroMQ's I/O thread writes
            publisher.send_frame(frame)
        send_drivable(publisher, 999)
        publisher.close()
        seqs = [sub.recv()[0].seq for _ in range(81)]
    assert seqs == [*range(80), 999]


BURST_THEN_EXIT = f"""
import sys
import numpy as np
from rtseg.protocol import DRIVABLE_CLASSES, encode
from rtseg.stream.publisher import MaskPublisher

publisher = MaskPublisher("tcp://127.0.0.1:*", hwm=200, linger_ms={ROOMY_LINGER_MS})
print(publisher.endpoint, flush=True)
small = np.ones((4, 8), np.uint8)
send = lambda topic, seq: publisher.publish(
    topic, "drivable", small, seq=seq, stamp_ns=0, frame_id="f", classes=DRIVABLE_CLASSES,
    model="m")
burst = [encode("big/drivable", "drivable", np.ones((360, 640), np.uint8), seq=seq,
                stamp_ns=0, frame_id="f", classes=DRIVABLE_CLASSES, model="m")
         for seq in range(80)]
while not sys.stdin.readline().startswith("joined"):  # one line per hello received
    send("hello/drivable", 0)
for frame in burst:  # encoded beforehand: sent faster than ZeroMQ's I/O thread writes
    publisher.send_frame(frame)
send("last/drivable", 999)
publisher.close()
"""


def test_a_publisher_process_that_exits_at_once_has_sent_its_queue():
    """close() waits for the queue before the process exits (its own context, terminated)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", BURST_THEN_EXIT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        topics = ["hello/drivable", "big/drivable", "last/drivable"]
        with MaskSubscriber(endpoint, topics, timeout_ms=10000) as sub:
            while True:  # tell the publisher each hello we did not get: it sends another
                proc.stdin.write("again\n")
                proc.stdin.flush()
                try:
                    sub.recv(timeout_ms=100)
                    break
                except TimeoutError:
                    continue
            proc.stdin.write("joined\n")
            proc.stdin.flush()
            seqs = []
            while not seqs or seqs[-1] != 999:
                header, _ = sub.recv()
                if header.topic != "hello/drivable":
                    seqs.append(header.seq)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert seqs == [*range(80), 999]


def test_closing_waits_for_a_stuck_subscriber_no_longer_than_the_linger():
    mask = np.ones((1080, 1920), np.uint8)
    publisher = MaskPublisher(LOCAL, hwm=1000, linger_ms=200)
    stuck = zmq.Context.instance().socket(zmq.SUB)  # connected, subscribed, never reads
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(publisher.endpoint)
    try:
        with MaskSubscriber(publisher.endpoint, ["cam0/drivable"]) as sub:
            warm_up(publisher, sub)  # the stuck socket has joined too (it connected first)
        for seq in range(100):  # 200 MB: far more than the socket buffers hold
            publisher.publish("big/drivable", "drivable", mask, seq=seq, stamp_ns=0,
                              frame_id="f", classes=DRIVABLE_CLASSES, model="m")
        closing = threading.Thread(target=publisher.close, daemon=True)
        closing.start()
        closing.join(timeout=15)
        assert not closing.is_alive(), "close() waited past its linger for a stuck subscriber"
    finally:
        stuck.close(linger=0)


def test_publisher_closed():
    publisher = MaskPublisher(LOCAL)
    publisher.close()
    publisher.close()
    with pytest.raises(RuntimeError, match="closed"):
        send_drivable(publisher, 0)


# ---------------------------------------------------------------------------------- echo


@contextmanager
def publishing(send: Callable[[MaskPublisher, int], object], period_s: float = 0.01):
    """A real publisher calling send(pub, seq) every period_s in a thread; yields endpoint."""
    publisher, stop = MaskPublisher(LOCAL), threading.Event()

    def loop() -> None:
        seq = 0
        while not stop.is_set():
            send(publisher, seq)
            seq += 1
            stop.wait(period_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield publisher.endpoint
    finally:
        stop.set()
        thread.join(5)
        publisher.close()


def send_both(pub: MaskPublisher, seq: int) -> None:
    send_drivable(pub, seq, encoding="bits")
    send_classes(pub, seq)


ECHO_DRIVABLE = re.compile(
    r"cam0/drivable seq=\d+ 8x4 bits drivable=25\.0% latency=12\.5ms age=\d+\.\dms")
ECHO_CLASSES = re.compile(r"cam0/classes seq=\d+ 8x4 mono8 classes=2/4 latency=- age=\d+\.\dms")


def test_echo_prints_one_line_per_mask():
    out = io.StringIO()
    with publishing(send_both) as endpoint:
        n = echo(endpoint, ["cam0/drivable", "cam0/classes"], count=6, timeout_s=5, out=out)
    lines = out.getvalue().splitlines()
    assert n == 6 and len(lines) == 6
    for line in lines:
        assert ECHO_DRIVABLE.fullmatch(line) or ECHO_CLASSES.fullmatch(line), line
    assert any(ECHO_DRIVABLE.fullmatch(x) for x in lines)
    assert any(ECHO_CLASSES.fullmatch(x) for x in lines)


def test_echo_hz_prints_rates():
    out = io.StringIO()
    with publishing(send_drivable, period_s=0.01) as endpoint:
        n = echo(endpoint, ["cam0/drivable"], hz=True, count=120, timeout_s=5, out=out)
    lines = out.getvalue().splitlines()
    assert n == 120 and lines
    pattern = (r"cam0/drivable rate=(\d+\.\d+)/s period min=\d+\.\dms max=\d+\.\dms "
               r"mean=\d+\.\dms n=\d+")
    for line in lines:
        match = re.fullmatch(pattern, line)
        assert match, line
        assert 20 < float(match[1]) < 200, line
    assert sum(int(line.rpartition("n=")[2]) for line in lines) == 120


def test_echo_stops_after_timeout_without_messages():
    out = io.StringIO()
    start = time.monotonic()
    assert echo("tcp://127.0.0.1:9", ["cam0/drivable"], timeout_s=0.2, out=out) == 0
    assert 0.19 <= time.monotonic() - start < 2.0
    assert out.getvalue() == ""


def test_echo_skips_malformed_frames_with_a_warning(capsys):
    def send_bad_then_good(pub: MaskPublisher, seq: int) -> None:
        pub.send_frame(b"cam0/drivable\x00\xc1")
        send_drivable(pub, seq)

    out = io.StringIO()
    with publishing(send_bad_then_good) as endpoint:
        assert echo(endpoint, ["cam0/drivable"], count=3, timeout_s=5, out=out) == 3
    assert len(out.getvalue().splitlines()) == 3
    warnings = capsys.readouterr().err.splitlines()
    assert warnings, "no warning printed for the malformed frames"
    for line in warnings:
        assert line.startswith("warning: skipped a malformed message: cam0/drivable: payload")


def test_echo_argument_errors():
    with pytest.raises(RtsegError, match="--count"):
        echo("tcp://127.0.0.1:9", ["cam0/drivable"], count=0)
    with pytest.raises(RtsegError, match="--timeout"):
        echo("tcp://127.0.0.1:9", ["cam0/drivable"], timeout_s=0)
    with pytest.raises(RtsegError, match="nonsense"):
        echo("nonsense", ["cam0/drivable"], timeout_s=1)
