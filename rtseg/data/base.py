"""What every data set reader returns: a list of samples plus the data set's description.

A reader turns a folder layout into a `SampleSet`: `load(i)` gives one
`(image (H, W, 3) uint8 RGB, mask (H, W) uint8 class index)` pair, with unlabelled pixels
set to `info.ignore_index`. Transforms and tensors come later (`rtseg.data.transforms`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rtseg.data import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class DatasetInfo:
    """Class names, which are drivable, the ignore label, display palette and normalisation.

    palette: (C, 3) RGB colours as nested tuples (for overlays), or () for a default one.
    """

    classes: tuple[str, ...]
    drivable: tuple[str, ...]
    ignore_index: int = 255
    palette: tuple[tuple[int, int, int], ...] = ()
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def drivable_ids(self) -> tuple[int, ...]:
        """Indices of the drivable classes."""
        return tuple(self.classes.index(c) for c in self.drivable)

    def palette_array(self) -> np.ndarray:
        """(C, 3) uint8 RGB palette; a fixed pseudo-random one when none was given."""
        if self.palette:
            return np.asarray(self.palette, dtype=np.uint8)
        return default_palette(len(self.classes))


def default_palette(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB: fixed pseudo-random colours for data sets that bring none."""
    return np.random.default_rng(12345).integers(40, 256, size=(count, 3), dtype=np.uint8)


@dataclass(frozen=True)
class SampleSet:
    """`len(ids)` samples; `loader(id)` -> (image (H,W,3) uint8 RGB, mask (H,W) uint8).

    ids are whatever the reader needs to find a sample (usually a pair of paths); names are
    a short unique name per sample (the image file's stem), used by `rtseg predict`.
    """

    info: DatasetInfo
    ids: tuple
    names: tuple[str, ...]
    loader: Callable[[object], tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample `index` -> (image (H, W, 3) uint8 RGB, mask (H, W) uint8)."""
        return self.loader(self.ids[index])

    def subset(self, indices: Sequence[int]) -> SampleSet:
        """The samples at `indices`, same info and loader."""
        return SampleSet(self.info, tuple(self.ids[i] for i in indices),
                         tuple(self.names[i] for i in indices), self.loader)
