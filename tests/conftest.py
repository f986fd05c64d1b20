"""Shared fixtures: real checkpoints trained for a few steps, real files, real nodes.

No port is ever picked and released: in-process nodes bind ``tcp://127.0.0.1:*`` and tell
the bound endpoint; nodes in a subprocess publish on an ``ipc://`` endpoint in tmp_path.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

# A pytest-xdist worker (make test runs two) gives torch one thread, before torch is imported;
# the CLI subprocesses it starts inherit it. Two workers whose torch each spun OpenMP threads
# on both of the two cores took as long as one process (955 s); one thread each, 544 s.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ANY_PORT = "tcp://127.0.0.1:*"


@pytest.fixture
def endpoint(tmp_path) -> str:
    """A fresh ipc:// endpoint for one node in a subprocess (no TCP port to race for)."""
    return f"ipc://{tmp_path}/node.sock"


@dataclass
class RunningNode:
    """A node running on a thread, and a subscriber that has joined it."""

    sub: object  # MaskSubscriber on the node's mask topics (+ its status topics)
    thread: threading.Thread
    joined: object = None  # the status that proved the subscriber joined (before frame 0)
    reports: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def report(self):
        """The node's report once it has finished (joins it first)."""
        self.thread.join(timeout=60)
        assert not self.errors, self.errors
        assert self.reports, "the node did not finish"
        return self.reports[0]


LOSSLESS_HWM = 10_000


def until_stopping(sub, timeout_ms: int = 60000) -> list:
    """Every mask or image message `sub` (a MaskSubscriber) receives until a status says
    ``stopping``, the node's last message; TimeoutError if nothing comes for `timeout_ms`."""
    from rtseg.protocol import NodeStatus

    received = []
    while True:
        message = sub.recv_message(timeout_ms=timeout_ms)
        if not isinstance(message, NodeStatus):
            received.append(message)
        elif message.state == "stopping":
            return received


@contextmanager
def running_node(cfg, topics: list[str], backend=None, stop=None,
                 join_timeout_s: float = 120) -> Iterator[RunningNode]:
    """Start the node of `cfg` on a thread, bound to a free port of its own choosing; yield
    once a subscriber to `topics` has provably joined (it received the node's status, sent
    after its subscriptions), before the node reads its first frame.

    The node queues up to `LOSSLESS_HWM` frames for the subscriber (at least): tests read
    every message, and the real default (4) drops them, by design, whenever a loaded
    machine delays ZeroMQ's I/O thread (a lost mask failed CI once).

    `stop` (an Event; the node's own when None) is set on leaving the block, and the node
    must then end within 60 s: a live source never ends by itself."""
    from live_node import serve_node  # tests/ is on sys.path

    from rtseg.client import MaskSubscriber
    from rtseg.protocol import NodeStatus

    stop = stop or threading.Event()  # set on leaving: a live source never ends by itself
    handoff: queue.Queue = queue.Queue()
    names = sorted({topic.rsplit("/", 1)[0] for topic in topics})

    def on_ready(bound: str) -> None:
        sub = MaskSubscriber(bound, [*topics, *(f"{n}/status" for n in names)],
                             timeout_ms=60000)
        try:
            while not isinstance(message := sub.recv_message(timeout_ms=20000), NodeStatus):
                pass
        except BaseException as exc:
            sub.close()
            handoff.put(exc)
            raise
        handoff.put((sub, message))

    node = RunningNode(sub=None, thread=threading.Thread(target=lambda: None))

    def main() -> None:
        try:
            node.reports.append(serve_node(replace(cfg, bind=ANY_PORT, heartbeat_s=0.2,
                                                   hwm=max(cfg.hwm, LOSSLESS_HWM)),
                                           stop, on_ready, backend))
        except BaseException as exc:
            node.errors.append(exc)
            handoff.put(exc)

    node.thread = threading.Thread(target=main, daemon=True)
    node.thread.start()
    got = handoff.get(timeout=join_timeout_s)
    if isinstance(got, BaseException):
        raise got
    node.sub, node.joined = got
    try:
        yield node
    finally:
        stop.set()
        node.sub.close()
        node.thread.join(timeout=60)
    assert not node.thread.is_alive(), "the node did not stop within 60 s of its stop event"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real LR-ASPP checkpoint trained for a few steps on small generated scenes."""
    from rtseg.config import DataConfig, OutputConfig, TrainConfig, TrainParams
    from rtseg.training.loop import train

    out = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    cfg = TrainConfig(
        data=DataConfig(height=64, width=96, train_size=32, val_size=4),
        train=TrainParams(steps=4, batch_size=2, eval_every=2, warmup_steps=1, device="cpu"),
        output=OutputConfig(path=str(out), logs=str(out.parent / "logs")),
    )
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def compiled_engine(tmp_path_factory, tiny_checkpoint):
    """compile(fmt, device="cpu", **kw) -> CompileResult: `tiny_checkpoint` compiled into
    `fmt` (static batch 1, parity gate on 2 frames) once per session and arguments, in a
    folder of its own; the tests sharing it only read what it wrote."""
    from rtseg.config import CompileConfig
    from rtseg.export import compile_checkpoint

    done: dict = {}

    def compile_once(fmt: str, device: str = "cpu", **kw):
        key = (fmt, device, tuple(sorted(kw.items())))
        if key not in done:
            cfg = CompileConfig(checkpoint=str(tiny_checkpoint), format=fmt, device=device,
                                out=str(tmp_path_factory.mktemp(fmt)), frames=2, **kw)
            done[key] = compile_checkpoint(cfg)
        return done[key]

    return compile_once


@pytest.fixture
def cli_env() -> dict:
    """Environment for running the `rtseg` console script in a subprocess."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pytest_collection_modifyitems(config, items):
    """Skip GPU-marked tests cleanly where no CUDA GPU is visible."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def two_class_folder(tmp_path_factory) -> Path:
    """images/ + masks/ of 12 generated 72x100 scenes; masks 0 = background, 255 = road."""
    import cv2
    import numpy as np

    from rtseg.data import synthetic

    root = tmp_path_factory.mktemp("road_folder")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(5)
    for i in range(12):
        image, label = synthetic.render_scene(rng, 72, 100)
        cv2.imwrite(str(root / "images" / f"frame_{i:02d}.jpg"),
                    cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"frame_{i:02d}.png"),
                    synthetic.drivable_mask(label) * 255)
    return root


@pytest.fixture
def first_mask():
    """run(cfg, topic) -> (report, header, mask): a real node in a thread, the first mask a
    real subscriber receives on `topic`, and the node's report once it has finished.
    The subscriber has joined before the node's first frame (see `running_node`)."""

    def run(cfg, topic: str, timeout_ms: int = 60000):
        with running_node(cfg, [topic]) as node:
            header, mask = node.sub.recv(timeout_ms=timeout_ms)
            report = node.report
        return report, header, mask

    return run
