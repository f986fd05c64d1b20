"""What `rtseg foxglove` costs the machine it shares with the node (Linux).

    python benchmarks/foxglove_cost.py [--name cpu-foxglove-cost] [--seconds 20] [--hz 10]

The bridge runs beside the node on the robot's computer, so its CPU time per frame is
taken from inference. A publisher in this process sends what a node run with
`--image-topic` sends per frame (a 640-wide JPEG of the frame, the drivable and classes
masks at the frame's size, a status every second) at `--hz`, to a real `rtseg foxglove`
process; a Foxglove WebSocket client (tests/foxglove_client.py) subscribes to nothing, to
the two masks, the overlay, or to everything (masks, image, the drawn overlay, status).
Per case: the bridge process's CPU time (user + system, /proc/PID/stat) per published
frame over `--seconds` after a warm-up, and the messages the client received per
published frame.
Writes results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from encode_speed import cpu_name, save  # noqa: I001 (benchmarks/ is sys.path[0])

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from foxglove_client import FoxgloveClient  # noqa: E402

SIZES = ((512, 1024), (1080, 1920))
CASES = {"no client subscribed": [],
         "masks": ["/cam/drivable", "/cam/classes"],
         "overlay": ["/cam/overlay"],
         "everything": ["/cam/drivable", "/cam/classes", "/cam/image", "/cam/overlay",
                        "/cam/status"]}
WARMUP_S = 3.0


def scenes(height: int, width: int, count: int = 8) -> list[tuple]:
    """`count` generated road scenes: (JPEG 640 wide, drivable, classes) at the size."""
    from rtseg.data import synthetic

    rng, out = np.random.default_rng(0), []
    names = synthetic.CLASSES
    lut = np.zeros(256, np.uint8)
    lut[[names.index(n) for n in synthetic.DRIVABLE]] = 1
    for _ in range(count):
        image, label = synthetic.render_scene(rng, height, width)
        small = cv2.resize(image, (640, round(640 * height / width)), interpolation=cv2.INTER_AREA)
        jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        out.append((jpeg, small.shape[1], small.shape[0], lut[label], label))
    return out


class Publisher(threading.Thread):
    """Publishes the scenes as a node with --image-topic does, at `hz`, counting frames."""

    def __init__(self, pub, frames: list[tuple], hz: float) -> None:
        super().__init__(daemon=True)
        self.pub, self.frames, self.hz = pub, frames, hz
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from rtseg.data import synthetic
        from rtseg.stream.publisher import FrameMeta

        next_at, last_status = time.monotonic(), 0.0
        while not self.stop.is_set():
            jpeg, w, h, drivable, classes = self.frames[self.sent % len(self.frames)]
            meta = FrameMeta(seq=self.sent, stamp_ns=time.time_ns(), frame_id="cam", model="m")
            self.pub.publish_image("cam", jpeg, w, h, meta)
            self.pub.publish_frame("cam", drivable, classes, meta,
                                   class_names=synthetic.CLASSES)
            if time.monotonic() - last_status >= 1.0:
                self.pub.publish_status("cam", "running", [])
                last_status = time.monotonic()
            self.sent += 1
            next_at += 1.0 / self.hz
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_bridge(endpoint: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "foxglove", endpoint, "cam",
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if " at ws://" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining
            return proc, line.split(" at ", 1)[1].split()[0]
    raise RuntimeError(f"rtseg foxglove exited ({proc.wait()}) before it listened")


def measure(publisher: Publisher, pid: int, url: str, topics: list[str], seconds: float):
    """CPU ms of the bridge and messages received per topic, per published frame."""
    with FoxgloveClient(url) as client:
        if topics:
            client.subscribe(topics)
        counts = dict.fromkeys(topics, 0)
        end_warmup = time.monotonic() + WARMUP_S
        while time.monotonic() < end_warmup:
            drain(client, counts, end_warmup)
        counts = dict.fromkeys(topics, 0)
        cpu0, sent0 = cpu_seconds(pid), publisher.sent
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            drain(client, counts, deadline)
        cpu1, sent1 = cpu_seconds(pid), publisher.sent
    frames = max(1, sent1 - sent0)
    return (cpu1 - cpu0) * 1e3 / frames, {t: n / frames for t, n in counts.items()}, frames


def drain(client: FoxgloveClient, counts: dict, until: float) -> None:
    """Receive what arrives until `until` (monotonic), counting data messages per topic."""
    try:
        taken = client.receive(max(0.01, until - time.monotonic()))
    except TimeoutError:
        return
    if taken is not None:
        counts[taken[0]] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="cpu-foxglove-cost")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hz", type=float, default=10.0)
    args = parser.parse_args()
    from rtseg.stream.publisher import MaskPublisher

    rows = []
    for h, w in SIZES:
        with MaskPublisher("tcp://127.0.0.1:*", hwm=16) as pub:  # 4 frames, as a node
            publisher = Publisher(pub, scenes(h, w), args.hz)
            publisher.start()
            proc, url = start_bridge(pub.endpoint)
            try:
                for case, topics in CASES.items():
                    ms, per_frame, frames = measure(publisher, proc.pid, url, topics,
                                                    args.seconds)
                    rows.append({"size": f"{h}x{w}", "case": case, "cpu_ms": ms,
                                 "frames": frames, "received_per_frame": per_frame})
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                publisher.stop.set()
                publisher.join(timeout=10)
    command = (f"python benchmarks/foxglove_cost.py --name {args.name} --seconds "
               f"{args.seconds:g} --hz {args.hz:g}")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")
    result = {"command": command, "date": date, "cpu": cpu_name(), "rows": rows}
    lines = [f"# `rtseg foxglove`: the bridge's CPU time per frame\n\nCommand: `{command}`  \n"
             f"Recorded {date}; {result['cpu']}, {os.cpu_count()} CPUs; frames published at "
             f"{args.hz:g} Hz (image 640 wide, masks at the size), the bridge a separate "
             "process, one WebSocket client.\n",
             "| masks | client subscribes to | frames | bridge CPU ms / frame | "
             "received per frame |", "|---|---|---|---|---|"]
    for r in rows:
        got = ", ".join(f"{t.rsplit('/', 1)[1]} {n:.2f}"
                        for t, n in r["received_per_frame"].items()) or "-"
        lines.append(f"| {r['size']} | {r['case']} | {r['frames']} | {r['cpu_ms']:.2f} | "
                     f"{got} |")
    save(args.out, args.name, result, lines)


if __name__ == "__main__":
    main()
