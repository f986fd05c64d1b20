"""torchrun with 2 CPU processes (gloo) trains exactly what one process does.

With frozen BatchNorm (per-rank batch statistics would differ from one batch of 2), rank r
taking sample 2k+r of each step and DDP averaging the gradients is the same computation as
one process taking both samples in a batch of 2 (as long as both images have the same
number of labelled pixels: the loss is a mean over pixels).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rtseg.checkpoint import load_checkpoint

RECIPE = """
[data]
height = 64
width = 96
train_size = 16
val_size = 6
[augment]
scale = [1.0, 1.5]  # >= 1: no padding, so every image has the same number of valid pixels
[train]
steps = 6
batch_size = {batch}
eval_every = 3
warmup_steps = 1
freeze_bn = true
overlays = 0
device = "cpu"
[output]
path = "{out}/best.pt"
logs = "{out}/logs"
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed beside this Python")
def test_two_cpu_processes_match_one(tmp_path):
    runs = {}
    for name, batch, launcher in (
        ("single", 2, [sys.executable, "-m", "rtseg"]),
        ("ddp", 1, [str(Path(sys.executable).parent / "torchrun"), "--standalone",
                    "--nproc_per_node", "2", "-m", "rtseg"]),
    ):
        out = tmp_path / name
        out.mkdir()
        (out / "r.toml").write_text(RECIPE.format(batch=batch, out=out))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([*launcher, "train", str(out / "r.toml"), "--quiet"],
                              capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        assert len(lines) == 1  # rank 0 alone writes and prints
        runs[name] = (json.loads(lines[0]), load_checkpoint(out / "best.pt"))
    (single, a), (ddp, b) = runs["single"], runs["ddp"]
    assert ddp["metrics"]["images"] == single["metrics"]["images"] == 6
    assert ddp["best_step"] == single["best_step"]
    assert ddp["metrics"]["miou"] == pytest.approx(single["metrics"]["miou"], abs=1e-4)
    for key, value in a.state_dict.items():
        assert torch.allclose(value.float(), b.state_dict[key].float(), atol=1e-4), key
    rows = (tmp_path / "ddp" / "logs" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["step", "3", "6"]
