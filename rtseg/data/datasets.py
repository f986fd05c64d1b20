"""Torch data sets built from a DataConfig; the training issue adds real-data readers here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from rtseg.config import DataConfig
from rtseg.data import IMAGENET_MEAN, IMAGENET_STD
from rtseg.errors import RtsegError


@dataclass(frozen=True)
class DatasetInfo:
    """Class names, which are drivable, the ignore label, and normalisation of a data set."""

    classes: tuple[str, ...]
    drivable: tuple[str, ...]
    ignore_index: int = 255
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def to_tensor(image: np.ndarray, mean, std) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, scaled to [0, 1] then normalised."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return t.sub_(m).div_(s)


class SyntheticRoads(Dataset):
    """Generated road scenes; item i is rendered from seed (seed, split, i): reproducible, and
    the train (split 0) and val (split 1) scenes of one seed never coincide.

    Item: image (3, H, W) float32 normalised, mask (H, W) int64 class index.
    """

    def __init__(self, size: int, height: int, width: int, seed: int, split: int,
                 info: DatasetInfo):
        self.size, self.height, self.width, self.info = size, height, width, info
        self.seed, self.split = seed, split

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from rtseg.data import synthetic

        rng = np.random.default_rng((self.seed, self.split, index))
        image, mask = synthetic.render_scene(rng, self.height, self.width)
        return to_tensor(image, self.info.mean, self.info.std), torch.from_numpy(mask).long()


def make_datasets(cfg: DataConfig) -> tuple[Dataset, Dataset, DatasetInfo]:
    """(train, val, info) for a data config; val scenes never overlap train scenes."""
    if cfg.kind == "synthetic":
        from rtseg.data import synthetic

        info = DatasetInfo(classes=tuple(synthetic.CLASSES),
                           drivable=tuple(cfg.drivable or synthetic.DRIVABLE))
        train = SyntheticRoads(cfg.train_size, cfg.height, cfg.width, cfg.seed, 0, info)
        val = SyntheticRoads(cfg.val_size, cfg.height, cfg.width, cfg.seed, 1, info)
        return train, val, info
    raise RtsegError(f"unknown data kind {cfg.kind!r}: this version reads `synthetic`")
