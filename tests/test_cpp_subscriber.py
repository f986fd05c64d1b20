"""The protocol from another language: tests/cpp/rtseg_subscriber.cpp, a C++ subscriber
written from PROTOCOL.md alone (cppzmq + msgpack-cxx + libpng), built here and run against real
frames on a real socket; every mask it accepts must be the one the Python client decodes
(FNV-1a of the mono8 pixels), and every broken frame must be rejected with its reason."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
import zmq

from rtseg.data import synthetic
from rtseg.protocol import DRIVABLE_CLASSES, decode, encode

SOURCE = Path(__file__).parent / "cpp" / "rtseg_subscriber.cpp"
HEADERS = ("/usr/include/zmq.hpp", "/usr/include/msgpack.hpp", "/usr/include/png.h")
PACKAGES = "libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libpng-dev"  # .ci/run installs them


@pytest.fixture(scope="module")
def subscriber(tmp_path_factory) -> Path:
    """The C++ subscriber, compiled (skipped where no C++ compiler or headers)."""
    compiler = shutil.which("g++")
    if compiler is None or not all(Path(h).exists() for h in HEADERS):
        pytest.skip(f"needs g++ and {PACKAGES} (apt-get install {PACKAGES})")
    binary = tmp_path_factory.mktemp("cpp") / "rtseg_subscriber"
    build = subprocess.run([compiler, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror",
                            "-DMSGPACK_NO_BOOST", str(SOURCE), "-o", str(binary), "-lzmq", "-lpng"],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    return binary


def fnv1a64(mask: np.ndarray) -> str:
    value = 14695981039346656037
    for byte in mask.tobytes():
        value = ((value ^ byte) * 1099511628211) % 2**64
    return f"{value:016x}"


def run_against(binary: Path, frames: list[bytes], count: int, topics: list[str]) -> list[str]:
    """Start the subscriber on a fresh PUB socket and send `frames` round after round
    (a SUB joins late: the first rounds may be lost) until it exits; its output lines."""
    with zmq.Context() as ctx, ctx.socket(zmq.PUB) as pub:
        pub.linger = 0
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        proc = subprocess.Popen([str(binary), f"tcp://127.0.0.1:{port}", str(count), *topics],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = threading.Event()
        threading.Thread(target=lambda: (proc.wait(), done.set()), daemon=True).start()
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            for frame in frames:
                pub.send(frame)
            done.wait(0.05)
        if not done.is_set():
            proc.kill()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out.splitlines()


def png(image: np.ndarray) -> bytes:
    """`image` as PNG bytes, whatever its depth and channels."""
    return cv2.imencode(".png", image)[1].tobytes()


def scene_frames() -> dict[tuple[str, int], tuple[bytes, np.ndarray, str]]:
    """Generated scenes as a node sends them: the drivable mask as bits and as mono8, the
    classes mask as mono8 and as PNG; by (topic, seq) the frame, its mask as Python
    decodes it and its encoding."""
    rng, lut = np.random.default_rng(11), np.zeros(256, np.uint8)
    lut[[synthetic.CLASSES.index(n) for n in synthetic.DRIVABLE]] = 1
    frames = {}
    for seq in range(3):
        _, label = synthetic.render_scene(rng, 90, 160)
        for topic, kind, mask, names, encoding in (
                ("cam/drivable", "drivable", lut[label], DRIVABLE_CLASSES, "bits"),
                ("cam/classes", "classes", label, synthetic.CLASSES, "mono8"),
                ("raw/drivable", "drivable", lut[label], DRIVABLE_CLASSES, "mono8"),
                ("png/classes", "classes", label, synthetic.CLASSES, "png")):
            frame = encode(topic, kind, mask, seq=seq, stamp_ns=1_000 + seq, frame_id="cam",
                           classes=names, model="labels", encoding=encoding)
            frames[(topic, seq)] = frame, decode(frame)[1], encoding
    return frames


def test_the_cpp_subscriber_reads_what_python_reads(subscriber):
    frames = scene_frames()
    # twice as many as one round sends: whatever round it joins in, one whole round is in
    lines = run_against(subscriber, [f for f, *_ in frames.values()], 2 * len(frames),
                        ["cam/drivable", "cam/classes", "raw/drivable", "png/classes"])
    seen = set()
    for line in lines:
        status, topic, kind, seq, stamp, size, encoding, count, digest = line.split()
        mask = frames[(topic, int(seq))][1]
        assert (status, int(stamp), size) == ("ok", 1_000 + int(seq), "160x90")
        assert kind == topic.split("/")[1] and encoding == frames[(topic, 0)][2]
        assert int(count) == np.count_nonzero(mask) and digest == fnv1a64(mask)
        seen.add((topic, int(seq)))
    assert seen == set(frames)  # every mask, bits, mono8 and PNG, decoded alike


def test_the_cpp_subscriber_rejects_broken_frames_and_goes_on(subscriber):
    """PROTOCOL.md's reader obligations, in C++: each broken frame is named and skipped."""
    good = encode("cam/drivable", "drivable", np.ones((4, 6), np.uint8), seq=7, stamp_ns=9,
                  frame_id="cam", classes=DRIVABLE_CLASSES, model="m")
    payload = msgpack.unpackb(good.split(b"\x00", 1)[1])

    def frame(**changes) -> bytes:
        return b"cam/drivable\x00" + msgpack.packb({**payload, **changes})

    broken = {
        "the payload is not a map": b"cam/drivable\x00" + msgpack.packb([1, 2, 3]),
        "protocol version 2, not 1": frame(v=2),
        "data is 23 bytes, mono8 6x4 needs 24": frame(data=bytes(23)),
        "missing key seq": b"cam/drivable\x00" + msgpack.packb(
            {k: v for k, v in payload.items() if k != "seq"}),
        "key width has the wrong type": frame(width="6"),
        "size 9000x4": frame(width=9000),
        "drivable classes are not [not_drivable, drivable]": frame(classes=["a", "b"]),
        "not MessagePack": b"cam/drivable\x00\xc1\xc1",
        "PNG is 5x4, the message says 6x4": frame(
            encoding="png", data=png(np.ones((4, 5), np.uint8))),
        "PNG is not 8-bit grayscale (bit depth 16, colour type 0)": frame(
            encoding="png", data=png(np.ones((4, 6), np.uint16))),
        "PNG is not 8-bit grayscale (bit depth 8, colour type 2)": frame(
            encoding="png", data=png(np.ones((4, 6, 3), np.uint8))),
        "data is not a PNG": frame(encoding="png", data=b"GIF89a" + bytes(40)),
        "broken PNG": frame(encoding="png", data=png(np.ones((4, 6), np.uint8))[:40]),
    }
    # until the second good frame: a whole round of broken ones lies between the two
    lines = run_against(subscriber, [*broken.values(), good], 2, ["cam/drivable"])
    assert lines[-1].startswith("ok cam/drivable drivable 7 9 6x4 mono8 24 ")
    rejected = {line.split(" ", 2)[2] for line in lines if line.startswith("reject")}
    for reason in broken:
        assert any(r.startswith(reason) for r in rejected), (reason, rejected)
