"""Data set readers: a layout on disk -> the `SampleSet` of one split.

`open_split(cfg, "train" | "val" | "test")` dispatches on `cfg.kind` through `READERS`.
Every sample loads as (image (H, W, 3) uint8 RGB, mask (H, W) uint8 class index), with
unlabelled pixels = `info.ignore_index`, through the loaders of `rtseg.data.loading` bound
with `functools.partial` (so sample sets pickle into DataLoader workers and spawned DDP
processes). Samples are sorted by name (the image file's stem).

`[data] classes / drivable / palette / ignore_index` override what a reader knows; for the
fixed data sets (Cityscapes, VOC, CamVid) `classes` renames and must keep the count.

folder masks hold class indices 0..C-1 (other values become ignore), or colours when
`[data] palette` is given (exact RGB match per class, any other colour -> ignore). With
exactly two classes, a mask holding only 0 and 255 is a binary mask: 255 means class 1
(a mask with 0, 1 and 255 keeps 255 = ignore); the second class is then drivable by default.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rtseg.config import DataConfig
from rtseg.data import IMAGE_SUFFIXES, coco
from rtseg.data.base import DatasetInfo, SampleSet
from rtseg.data.classmaps import (
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_IDS,
    CITYSCAPES_PALETTE,
    VOC_CLASSES,
    voc_palette,
)
from rtseg.data.loading import (
    index_lut,
    load_coco,
    load_colour,
    load_folder,
    load_mapped,
    open_pil,
)
from rtseg.errors import RtsegError

SPLITS = ("train", "val", "test")
SHOWN = 5  # how many names an error lists



def open_split(cfg: DataConfig, split: str) -> SampleSet:
    """The samples of `split` ("train" | "val" | "test") of the data set `cfg` describes."""
    if split not in SPLITS:
        raise RtsegError(f"unknown split {split!r}: use one of {list(SPLITS)}")
    reader = READERS.get(cfg.kind)
    if reader is None:
        raise RtsegError(f"unknown data kind {cfg.kind!r}: readers exist for {sorted(READERS)} "
                         "(and `synthetic`, generated in rtseg.data.datasets, not read here)")
    return reader(cfg, split)


# ----------------------------------------------------------------------------- shared parts

def _root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise RtsegError(f"[data] kind = {cfg.kind!r} reads files: set [data] root to the "
                         "data set's folder")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise RtsegError(f"data root {root} does not exist: check [data] root (relative paths "
                         "are from the working directory)")
    return root


def _info(cfg: DataConfig, classes: Sequence[str], drivable_ids: Sequence[int],
          palette: Sequence) -> DatasetInfo:
    """The reader's description, with `[data] drivable / palette / ignore_index` applied."""
    classes = tuple(classes)
    drivable = tuple(cfg.drivable) if cfg.drivable is not None else tuple(
        classes[i] for i in drivable_ids)
    unknown = [d for d in drivable if d not in classes]
    if unknown:
        raise RtsegError(f"[data] drivable names {unknown}, which are not classes of this data "
                         f"set; its classes are {list(classes)}")
    palette = tuple(tuple(int(v) for v in c) for c in (cfg.palette or palette))
    if palette and (len(palette) != len(classes) or any(len(c) != 3 for c in palette)):
        raise RtsegError(f"[data] palette has {len(palette)} colours for {len(classes)} classes "
                         f"{list(classes)}: give one [r, g, b] per class")
    if not len(classes) <= cfg.ignore_index <= 255:
        raise RtsegError(f"[data] ignore_index = {cfg.ignore_index} must be in "
                         f"{len(classes)}..255 (not a class index)")
    return DatasetInfo(classes=classes, drivable=drivable, ignore_index=cfg.ignore_index,
                       palette=palette)


def _renamed(cfg: DataConfig, classes: tuple[str, ...]) -> tuple[str, ...]:
    """A fixed data set's class names, or `[data] classes` when given (same count)."""
    if cfg.classes is None:
        return classes
    if len(cfg.classes) != len(classes):
        raise RtsegError(f"[data] classes has {len(cfg.classes)} names but {cfg.kind} has "
                         f"{len(classes)} classes {list(classes)}: rename each or leave it out")
    return tuple(cfg.classes)


def _by_name(ids: Sequence[tuple]) -> list[tuple]:
    """Samples (first element: image path) sorted by image stem, then path."""
    return sorted(ids, key=lambda s: (Path(s[0]).stem, str(s[0])))


def _sample_set(info: DatasetInfo, ids: Sequence[tuple], loader: Callable,
                where: str) -> SampleSet:
    if not ids:
        raise RtsegError(f"{where} has no samples: add images there, or check [data] root, "
                         "kind and split")
    ids = _by_name(ids)
    return SampleSet(info, tuple(ids), tuple(Path(s[0]).stem for s in ids), loader)


def ratio_split(count: int, ratios: Sequence[float], seed: int, split: str) -> list[int]:
    """Sorted indices of `split` among `count` items: a permutation drawn with `seed`, cut
    by `ratios` (train, val[, test]; normalised by their sum). Disjoint across splits."""
    if len(ratios) not in (2, 3) or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise RtsegError(f"[data] split = {list(ratios)} must be 2 or 3 non-negative ratios "
                         "(train, val[, test]), e.g. [0.9, 0.1]")
    part = SPLITS.index(split)
    if part >= len(ratios):
        raise RtsegError(f"[data] split = {list(ratios)} has no {split} part: set "
                         "[data] split = [0.8, 0.1, 0.1] for a test split")
    cuts = np.round(np.cumsum(ratios) / sum(ratios) * count).astype(int)
    order = np.random.default_rng(seed).permutation(count)
    start = cuts[part - 1] if part else 0
    return sorted(order[start:cuts[part]].tolist())


def _split_dir(root: Path, split: str) -> Path:
    """root/<split>; "val" may also be spelled "valid" (Roboflow)."""
    names = ("val", "valid") if split == "val" else (split,)
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise RtsegError(f"missing split folder {root / names[0]}: this data set has no {split} "
                     "split there; add it or use another split")


def _missing(paths: Sequence[Path], what: str) -> None:
    """Error listing a few of `paths` when any is missing."""
    absent = [str(p) for p in paths if not Path(p).is_file()]
    if absent:
        raise RtsegError(f"{len(absent)} {what} do not exist, e.g. {absent[:SHOWN]}; check "
                         "[data] root and the data set's file lists")


def _split_file(path: Path, kind: str) -> list[str]:
    if not path.is_file():
        raise RtsegError(f"missing split file {path}: {kind} lists the samples of each split "
                         "there; check [data] root and the split name")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- readers

def open_folder(cfg: DataConfig, split: str) -> SampleSet:
    """root/images + root/masks (cut by `[data] split` ratios), or root/{train,val,test}/
    {images,masks}; pairs matched by file stem."""
    root = _root(cfg)
    if cfg.classes is None:
        raise RtsegError('[data] kind = "folder" needs the class names, one per mask value: '
                         'set [data] classes = ["background", "road"]')
    classes = tuple(cfg.classes)
    if (root / "train").is_dir():
        folder = _split_dir(root, split)
        pairs = _folder_pairs(folder / "images", folder / "masks")
    elif (root / "images").is_dir():
        pairs = _by_name(_folder_pairs(root / "images", root / "masks"))
        pairs = [pairs[i] for i in ratio_split(len(pairs), cfg.split, cfg.seed, split)]
    else:
        raise RtsegError(f"{root} has neither images/ + masks/ nor train/images + train/masks: "
                         "arrange the folder data set in one of these layouts")
    info = _info(cfg, classes, (1,) if len(classes) == 2 else (), ())
    return _sample_set(info, pairs, _folder_loader(cfg, info), f"split {split!r} of {root}")


def _folder_pairs(images_dir: Path, masks_dir: Path) -> list[tuple[str, str]]:
    images, masks = _by_stem(images_dir), _by_stem(masks_dir)
    for extra, there, other in ((sorted(set(images) - set(masks)), images_dir, masks_dir),
                                (sorted(set(masks) - set(images)), masks_dir, images_dir)):
        if extra:
            raise RtsegError(f"{len(extra)} file(s) in {there} have no partner with the same "
                             f"stem in {other}: {extra[:SHOWN]}; add them or move these out")
    return [(str(images[s]), str(masks[s])) for s in sorted(images)]


def _by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise RtsegError(f"missing folder {folder}: a folder data set keeps images/ and masks/ "
                         "side by side")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in found:
                raise RtsegError(f"{found[path.stem]} and {path} share a stem; keep one")
            found[path.stem] = path
    return found


def _folder_loader(cfg: DataConfig, info: DatasetInfo) -> Callable:
    count, ignore = len(info.classes), info.ignore_index
    if cfg.palette is not None:
        packed = [(r << 16) | (g << 8) | b for r, g, b in info.palette]
        if len(set(packed)) != len(packed):
            raise RtsegError(f"[data] palette {list(cfg.palette)} repeats a colour: give each "
                             "class its own")
        order = np.argsort(packed)
        return functools.partial(load_colour, np.asarray(packed, np.int64)[order],
                                 order.astype(np.uint8), ignore)
    lut = index_lut({i: i for i in range(count)}, ignore)
    binary = index_lut({0: 0, 255: 1}, ignore) if count == 2 else None
    return functools.partial(load_folder, lut, binary)


def open_cityscapes(cfg: DataConfig, split: str) -> SampleSet:
    """root/leftImg8bit/{split}/{city}/*_leftImg8bit.png + root/gtFine/{split}/{city}/
    *_gtFine_labelIds.png; labelIds -> the 19 trainIds, everything else ignore."""
    root = _root(cfg)
    images_dir, labels_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise RtsegError(f"missing split folder {folder}: Cityscapes needs leftImg8bit/ and "
                             "gtFine/ per split (unpack leftImg8bit_trainvaltest and gtFine)")
    images = sorted(images_dir.glob("*/*_leftImg8bit.png"))
    labels = [labels_dir / p.parent.name / p.name.replace("_leftImg8bit.png",
                                                          "_gtFine_labelIds.png")
              for p in images]
    _missing(labels, "Cityscapes label file(s) (gtFine *_labelIds.png)")
    info = _info(cfg, _renamed(cfg, CITYSCAPES_CLASSES), (0,), CITYSCAPES_PALETTE)
    lut = index_lut({label: i for i, label in enumerate(CITYSCAPES_LABEL_IDS)},
                    info.ignore_index)
    pairs = [(str(i), str(m)) for i, m in zip(images, labels)]
    return _sample_set(info, pairs, functools.partial(load_mapped, lut), str(images_dir))


def open_voc(cfg: DataConfig, split: str) -> SampleSet:
    """root/ImageSets/Segmentation/{split}.txt ids -> JPEGImages/{id}.jpg +
    SegmentationClass/{id}.png (palette indices; 255 = border -> ignore)."""
    root = _root(cfg)
    ids = _split_file(root / "ImageSets" / "Segmentation" / f"{split}.txt", "Pascal VOC")
    images = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
    labels = [root / "SegmentationClass" / f"{i}.png" for i in ids]
    _missing(images + labels, f"VOC file(s) listed in ImageSets/Segmentation/{split}.txt")
    info = _info(cfg, _renamed(cfg, VOC_CLASSES), (), voc_palette(len(VOC_CLASSES)))
    lut = index_lut({i: i for i in range(len(VOC_CLASSES))}, info.ignore_index)
    pairs = [(str(i), str(m)) for i, m in zip(images, labels)]
    return _sample_set(info, pairs, functools.partial(load_mapped, lut), f"VOC {split}")


def open_camvid(cfg: DataConfig, split: str) -> SampleSet:
    """SegNet layout: root/{split}.txt with `image label` paths per line; labels 0..10,
    11 = Unlabelled -> ignore. Palette from root/palette.png when present."""
    root = _root(cfg)
    listing = root / f"{split}.txt"
    pairs = []
    for number, line in enumerate(_split_file(listing, "CamVid (SegNet layout)"), 1):
        parts = line.split()
        if len(parts) != 2:
            raise RtsegError(f"{listing} line {number} is {line!r}: expected `image label`")
        pairs.append(tuple(str(_under_root(root, p)) for p in parts))
    _missing([Path(p) for pair in pairs for p in pair], f"CamVid file(s) listed in {listing}")
    info = _info(cfg, _renamed(cfg, CAMVID_CLASSES), (CAMVID_CLASSES.index("Road"),),
                 _camvid_palette(root))
    lut = index_lut({i: i for i in range(len(CAMVID_CLASSES))}, info.ignore_index)
    return _sample_set(info, pairs, functools.partial(load_mapped, lut), str(listing))


def _under_root(root: Path, text: str) -> Path:
    """A listed path, relative to root; SegNet's absolute `/SegNet/CamVid/train/x.png` form
    is taken as its last two parts under root."""
    path = Path(text)
    if path.is_absolute() and not path.exists():
        return root.joinpath(*path.parts[-2:])
    return root / path


def _camvid_palette(root: Path) -> tuple[tuple[int, int, int], ...]:
    path = root / "palette.png"
    if not path.is_file():
        return CAMVID_PALETTE
    colours = np.array(open_pil(str(path)).convert("RGB")).reshape(-1, 3)
    if len(colours) < len(CAMVID_CLASSES):
        raise RtsegError(f"{path} has {len(colours)} colours, fewer than the "
                         f"{len(CAMVID_CLASSES)} CamVid classes; fix or remove it")
    return tuple(tuple(int(v) for v in c) for c in colours[: len(CAMVID_CLASSES)])


def open_coco(cfg: DataConfig, split: str) -> SampleSet:
    """COCO segmentation JSON: Roboflow's root/{train,valid,test}/_annotations.coco.json with
    the images beside it, or one file `[data] annotations` cut by `[data] split` ratios."""
    root = _root(cfg)
    if cfg.annotations:
        path = root / cfg.annotations
        if not path.is_file():
            raise RtsegError(f"[data] annotations = {cfg.annotations!r}: {path} does not exist "
                             "(the path is relative to [data] root)")
        files, chosen = [path], path
    else:
        files = sorted(root.glob("*/_annotations.coco.json"))
        if not files:
            raise RtsegError(f"no */_annotations.coco.json under {root}: use Roboflow's COCO "
                             "export layout, or set [data] annotations = \"file.json\"")
        chosen = _split_dir(root, split) / "_annotations.coco.json"
        if not chosen.is_file():
            raise RtsegError(f"missing split file {chosen}: the {split} split has no "
                             "COCO annotations")
    docs = [(p, coco.read_json(p)) for p in files]
    classes, values = coco.class_values(docs, cfg.classes)
    info = _info(cfg, classes, (1,) if len(classes) == 2 else (), ())
    doc = next(d for p, d in docs if p == chosen)
    samples = _coco_samples(root, chosen, coco.coco_images(chosen, doc, values,
                                                           info.ignore_index))
    if cfg.annotations:
        samples = _by_name(samples)
        samples = [samples[i] for i in ratio_split(len(samples), cfg.split, cfg.seed, split)]
    return _sample_set(info, samples, load_coco, f"split {split!r} of {chosen}")


def _coco_samples(root: Path, json_path: Path, images: Sequence[coco.CocoImage]) -> list:
    """(image path, H, W, shapes) per image; the file is looked for beside the JSON, under
    root, then under root/images."""
    samples, absent = [], []
    for image in images:
        places = [json_path.parent / image.file_name, root / image.file_name,
                  root / "images" / image.file_name]
        found = next((p for p in places if p.is_file()), None)
        if found is None:
            absent.append(image.file_name)
        else:
            samples.append((str(found), image.height, image.width, image.shapes))
    if absent:
        raise RtsegError(f"{len(absent)} image(s) named in {json_path} are not beside it nor "
                         f"under {root} or {root / 'images'}: {absent[:SHOWN]}")
    return samples


READERS: dict[str, Callable[[DataConfig, str], SampleSet]] = {
    "folder": open_folder,
    "coco": open_coco,
    "cityscapes": open_cityscapes,
    "voc": open_voc,
    "camvid": open_camvid,
}
