"""The label facts of a model or data set: one record shared by every part that carries them.

`LabelFacts` is what a data set says about its labels and a model inherits from it: class
names, which of them are drivable, the normalisation of its input and the display palette.
`DatasetInfo` (data/), `CheckpointMeta` (checkpoint.py), `Manifest` (manifest.py) and
`ModelSpec` (backends/) derive from it, each adding its own facts; the files they are saved
in keep their own keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LabelFacts:
    """classes: one name per class index; drivable: the names of the drivable ones;
    mean/std: per RGB channel, normalising images in [0, 1]; palette: (C, 3) RGB colours as
    nested tuples (for overlays), or () for a default one."""

    classes: tuple[str, ...] = ()
    drivable: tuple[str, ...] = ()
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    palette: tuple[tuple[int, int, int], ...] = ()

    @property
    def drivable_ids(self) -> tuple[int, ...]:
        """Indices of the drivable classes in `classes`."""
        return tuple(self.classes.index(c) for c in self.drivable)

    def with_drivable(self, names: Sequence[str]):
        """The same record with `names` as its drivable classes (a sidewalk robot's
        Pavement where the model was trained for a car's Road).

        Raises:
            RtsegError: no name, or a name that is not one of `classes`.
        """
        from rtseg.errors import RtsegError

        unknown = [name for name in names if name not in self.classes]
        if not names or unknown:
            raise RtsegError(f"--drivable {','.join(unknown or names) or '(none)'}: name one "
                             f"or more of the model's classes: {', '.join(self.classes)}")
        return replace(self, drivable=tuple(dict.fromkeys(names)))

    @property
    def labels(self) -> LabelFacts:
        """Only the label facts (of a DatasetInfo, CheckpointMeta, Manifest or ModelSpec)."""
        return LabelFacts(**self.label_fields())

    def label_fields(self) -> dict:
        """The label facts as keyword arguments, to build another record that carries them."""
        return {f.name: getattr(self, f.name) for f in fields(LabelFacts)}

    def palette_array(self):
        """(C, 3) uint8 RGB palette; a fixed pseudo-random one when none was given."""
        import numpy as np

        if self.palette:
            return np.asarray(self.palette, dtype=np.uint8)
        return default_palette(len(self.classes))


def default_palette(count: int):
    """(count, 3) uint8 RGB: fixed pseudo-random colours for data sets that bring none."""
    import numpy as np

    return np.random.default_rng(12345).integers(40, 256, size=(count, 3), dtype=np.uint8)


def label_fields_from_plain(raw: dict, drivable_key: str = "drivable") -> dict:
    """The label facts of a saved dict (a checkpoint's meta, a manifest's JSON, where the
    drivable names are under `drivable_key`) as keyword arguments with their types back;
    KeyError / TypeError / ValueError when one is missing or malformed (a missing palette
    is none)."""
    return {"classes": tuple(str(c) for c in raw["classes"]),
            "drivable": tuple(str(c) for c in raw[drivable_key]),
            "mean": tuple(float(v) for v in raw["mean"]),
            "std": tuple(float(v) for v in raw["std"]),
            "palette": tuple(tuple(int(v) for v in c) for c in raw.get("palette", ()))}
