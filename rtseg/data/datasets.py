"""Data sets by kind: `open_data(cfg, split)` -> SampleSet, generated scenes or a reader.

Generated scenes are a SampleSet like any other: sample i of split s is rendered from
seed (seed, s, i), so it is reproducible and train and val never coincide.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from rtseg.config import DataConfig
from rtseg.data.base import DatasetInfo, SampleSet

SPLITS = {"train": 0, "val": 1, "test": 2}


def open_data(cfg: DataConfig, split: str) -> SampleSet:
    """The `split` ("train" | "val" | "test") of the data set `cfg` describes."""
    if cfg.kind == "synthetic":
        return synthetic_split(cfg, split)
    from rtseg.data.readers import open_split

    return open_split(cfg, split)


def synthetic_split(cfg: DataConfig, split: str) -> SampleSet:
    """Generated road scenes at (cfg.height, cfg.width): train_size or val_size of them."""
    from rtseg.data import synthetic

    info = DatasetInfo(classes=tuple(synthetic.CLASSES),
                       drivable=tuple(cfg.drivable or synthetic.DRIVABLE),
                       palette=tuple(tuple(int(v) for v in c) for c in synthetic.PALETTE))
    size = cfg.train_size if split == "train" else cfg.val_size
    ids = tuple((cfg.seed, SPLITS[split], i) for i in range(size))
    names = tuple(f"scene_{cfg.seed}_{split}_{i:06d}" for i in range(size))
    return SampleSet(info, ids, names, partial(_render, cfg.height, cfg.width))


def _render(height: int, width: int, key: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    from rtseg.data import synthetic

    return synthetic.render_scene(np.random.default_rng(key), height, width)
