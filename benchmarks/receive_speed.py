"""What receiving one frame's masks costs a consumer on the same machine.

    python benchmarks/receive_speed.py [--name cpu-receive-speed] [--frames 300] [--hz 30]

A consumer of the node on the robot's own computer (a planner, `rtseg echo`, the bench's
subscriber) shares the cores with the engine, so every millisecond of CPU it spends per
frame is taken from inference. Per frame, a drivable mask (`bits`) and a classes mask
(`mono8`) as the node publishes them, sent from a bound PUB socket at `--hz` over loopback
TCP to `rtseg.client.MaskSubscriber.recv` in another process; that process's CPU time
(user + system, from `os.times`) and minor page faults (each fresh 4 KiB page a new buffer
touches) per frame, over `--frames` frames after a warm-up, and the median wall time of
`rtseg.protocol.decode` of both frames in this process. Writes results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import resource
import time
from pathlib import Path

import numpy as np
from encode_speed import cpu_name, save  # noqa: I001 (benchmarks/ is sys.path[0])

HERE = Path(__file__).resolve().parent
SIZES = ((512, 1024), (1080, 1920))
CLASSES = [f"class{i}" for i in range(11)]
TOPICS = ["cam0/drivable", "cam0/classes"]
WARMUP = 30


def frames(height: int, width: int) -> list[bytes]:
    """The two encoded frames of one (height, width) road-like class map."""
    from rtseg.protocol import DRIVABLE_CLASSES, encode

    rows = np.linspace(0, len(CLASSES) - 1, height).astype(np.uint8)[:, None]
    classes = np.ascontiguousarray(np.broadcast_to(rows, (height, width)))
    classes[:, width // 3: width // 2] = 3  # a road band, so the drivable mask has both values
    drivable = (classes == 3).view(np.uint8)
    return [encode("cam0/drivable", "drivable", drivable, seq=1, stamp_ns=1, frame_id="cam0",
                   classes=DRIVABLE_CLASSES, model="bench", encoding="bits"),
            encode("cam0/classes", "classes", classes, seq=1, stamp_ns=1, frame_id="cam0",
                   classes=CLASSES, model="bench")]


def _consume(endpoint: str, count: int, ready, results) -> None:
    """Child: receive WARMUP then `count` frames of masks; put CPU ms and faults per frame."""
    from rtseg.client import MaskSubscriber

    with MaskSubscriber(endpoint, TOPICS, timeout_ms=10_000) as sub:
        ready.set()
        for _ in range(2 * WARMUP):
            sub.recv()
        t0, r0 = os.times(), resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(2 * count):
            sub.recv()
        t1, r1 = os.times(), resource.getrusage(resource.RUSAGE_SELF)
    results.put({"user_ms": (t1.user - t0.user) * 1e3 / count,
                 "sys_ms": (t1.system - t0.system) * 1e3 / count,
                 "faults": (r1.ru_minflt - r0.ru_minflt) / count})


def consumer_cost(encoded: list[bytes], count: int, hz: float) -> dict:
    """Send `encoded` at `hz` until the consumer process has measured `count` frames."""
    import zmq

    ctx = multiprocessing.get_context("spawn")  # no ZeroMQ context crosses a fork
    ready, results = ctx.Event(), ctx.Queue()
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, 8)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    child = ctx.Process(target=_consume, args=(sock.getsockopt_string(zmq.LAST_ENDPOINT),
                                               count, ready, results), daemon=True)
    child.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the consumer process did not start within 60 s")
        next_send = time.monotonic()
        while results.empty() and child.is_alive():
            for frame in encoded:
                sock.send(frame, copy=False)
            next_send += 1.0 / hz
            time.sleep(max(0.0, next_send - time.monotonic()))
        if results.empty() and not child.is_alive():
            raise RuntimeError(f"the consumer process ended (exit code {child.exitcode}) "
                               "before it had measured")
        return results.get(timeout=10)
    finally:
        child.join(10)
        sock.close(linger=0)


def decode_ms(encoded: list[bytes], reps: int = 200) -> float:
    """Median wall ms of `rtseg.protocol.decode` of every frame in `encoded`."""
    from rtseg.protocol import decode

    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for frame in encoded:
            decode(frame)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="cpu-receive-speed")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--hz", type=float, default=30.0)
    args = parser.parse_args()
    rows = []
    for h, w in SIZES:
        encoded = frames(h, w)
        cost = consumer_cost(encoded, args.frames, args.hz)
        rows.append({"size": f"{h}x{w}", "bytes": sum(map(len, encoded)),
                     "decode_ms": decode_ms(encoded), **cost})
    command = f"python benchmarks/receive_speed.py --name {args.name} --frames {args.frames}"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")
    result = {"command": command, "date": date, "cpu": cpu_name(), "rows": rows}
    lines = [f"# Receiving one frame (drivable bits + classes mono8) in a consumer process\n\n"
             f"Command: `{command}`  \nRecorded {date}; {result['cpu']}; frames sent at "
             f"{args.hz:g} Hz over loopback TCP to `MaskSubscriber.recv`.\n",
             "| masks | bytes | consumer user ms / frame | system ms / frame | "
             "minor faults / frame | decode ms (in process) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['bytes']} | {r['user_ms']:.2f} | {r['sys_ms']:.2f} | "
              f"{r['faults']:.0f} | {r['decode_ms']:.3f} |" for r in rows]
    save(args.out, args.name, result, lines)


if __name__ == "__main__":
    main()
