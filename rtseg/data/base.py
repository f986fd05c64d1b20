"""What every data set reader returns: a list of samples plus the data set's description.

A reader turns a folder layout into a `SampleSet`: `load(i)` gives one
`(image (H, W, 3) uint8 RGB, mask (H, W) uint8 class index)` pair, with unlabelled pixels
set to `info.ignore_index`. Transforms and tensors come later (`rtseg.data.transforms`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rtseg.labels import LabelFacts


@dataclass(frozen=True)
class DatasetInfo(LabelFacts):
    """A data set's label facts (class names, which are drivable, normalisation, display
    palette: rtseg.labels.LabelFacts) and the label of its unlabelled pixels."""

    ignore_index: int = 255


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
