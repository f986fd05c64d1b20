"""Shared fixtures: real checkpoints trained for a few steps, real files, free ports."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def endpoint() -> str:
    """A fresh loopback TCP endpoint for one node."""
    return f"tcp://127.0.0.1:{free_port()}"


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
    The node waits 0.5 s once bound so the subscriber has joined before its first frame
    (ZeroMQ drops what a PUB socket sends before a subscription arrives)."""
    import threading
    import time

    from rtseg.client import MaskSubscriber
    from rtseg.stream.node import run_node

    def run(cfg, topic: str, timeout_ms: int = 60000):
        reports = []

        def node_main():
            reports.append(run_node(cfg, on_ready=lambda _: time.sleep(0.5)))

        with MaskSubscriber(cfg.bind, [topic], timeout_ms=timeout_ms) as sub:
            node = threading.Thread(target=node_main)
            node.start()
            header, mask = sub.recv()
            node.join(timeout=60)
        assert reports, "the node did not finish"
        return reports[0], header, mask

    return run
