"""Data set readers on real files written here: folder, COCO, Cityscapes, VOC, CamVid."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rtseg.config import DataConfig
from rtseg.data import coco
from rtseg.data.classmaps import CAMVID_PALETTE, voc_palette
from rtseg.data.readers import open_split, ratio_split
from rtseg.errors import RtsegError

H, W = 32, 48
CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """A random RGB picture saved with OpenCV; returns it as RGB (H, W, 3) uint8."""
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


def write_label(path: Path, values: np.ndarray, palette=None) -> None:
    """(H, W) uint8 saved as a grey PNG, or as a palette PNG with `palette` (flat RGB list)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(values.astype(np.uint8))
    if palette is not None:
        img.putpalette(palette)
        assert img.mode == "P"
    img.save(path)


def stripes(*values: int) -> np.ndarray:
    """(H, W) uint8 with vertical stripes of `values`, W // len(values) columns each."""
    return np.repeat(np.asarray(values, np.uint8), W // len(values))[None].repeat(H, 0)


# ----------------------------------------------------------------------------- folder

def folder_set(root: Path, count: int, labels=None) -> dict[str, np.ndarray]:
    images = {}
    for i in range(count):
        images[f"f{i:02d}"] = write_image(root / "images" / f"f{i:02d}.png", seed=i)
        write_label(root / "masks" / f"f{i:02d}.png",
                    stripes(0, 1, 2, 7) if labels is None else labels)
    return images


def test_folder_ratio_split_is_deterministic_and_disjoint(tmp_path):
    folder_set(tmp_path, 10)
    cfg = DataConfig(kind="folder", root=str(tmp_path), classes=("a", "b", "c"),
                     split=(0.8, 0.1, 0.1), seed=3)
    parts = {s: open_split(cfg, s).names for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(sum(parts.values(), ())) == [f"f{i:02d}" for i in range(10)]
    assert list(parts["train"]) == sorted(parts["train"])
    assert open_split(cfg, "train").names == parts["train"]
    other = [open_split(replace(cfg, seed=s), "train").names for s in range(4, 8)]
    assert any(names != parts["train"] for names in other)


def test_ratio_split_cuts_by_normalised_ratios():
    parts = [ratio_split(20, (2, 1, 1), 0, s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [10, 5, 5]
    assert sorted(sum(parts, [])) == list(range(20))
    with pytest.raises(RtsegError, match="no test part"):
        ratio_split(20, (0.9, 0.1), 0, "test")
    with pytest.raises(RtsegError, match="non-negative"):
        ratio_split(20, (0.9, -0.1), 0, "train")


def test_folder_loads_rgb_and_class_indices(tmp_path):
    images = folder_set(tmp_path, 3)
    cfg = DataConfig(kind="folder", root=str(tmp_path), classes=("a", "b", "c"), split=(2, 1))
    train = open_split(cfg, "train")
    assert len(train) == 2 and train.info.classes == ("a", "b", "c")
    assert train.info.drivable == () and train.info.ignore_index == 255
    image, mask = train.load(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    np.testing.assert_array_equal(image, images[train.names[0]])
    np.testing.assert_array_equal(mask, stripes(0, 1, 2, 255))  # 7 is no class -> ignore
    assert open_split(replace(cfg, drivable=("b",)), "val").info.drivable == ("b",)
    with pytest.raises(RtsegError, match=r"drivable names \['road'\]"):
        open_split(replace(cfg, drivable=("road",)), "val")


def test_folder_binary_masks_0_255(tmp_path):
    folder_set(tmp_path / "a", 2, labels=stripes(0, 255, 0, 255))
    folder_set(tmp_path / "b", 2, labels=stripes(0, 1, 255, 1))
    cfg = DataConfig(kind="folder", root=str(tmp_path / "a"), classes=("bg", "road"),
                     split=(1, 1))
    train = open_split(cfg, "train")
    assert train.info.drivable == ("road",) and train.info.drivable_ids == (1,)
    np.testing.assert_array_equal(train.load(0)[1], stripes(0, 1, 0, 1))
    mixed = open_split(replace(cfg, root=str(tmp_path / "b")), "train")
    np.testing.assert_array_equal(mixed.load(0)[1], stripes(0, 1, 255, 1))


def test_folder_colour_masks_with_palette(tmp_path):
    write_image(tmp_path / "images" / "x.jpg")
    write_image(tmp_path / "images" / "y.jpg")
    colours = np.array([[0, 0, 0], [128, 64, 128], [10, 200, 30], [1, 2, 3]], np.uint8)
    rgb = colours[stripes(0, 1, 2, 3)]
    (tmp_path / "masks").mkdir()
    for name in ("x", "y"):
        Image.fromarray(rgb).save(tmp_path / "masks" / f"{name}.png")
    cfg = DataConfig(kind="folder", root=str(tmp_path), classes=("bg", "road", "grass"),
                     palette=((0, 0, 0), (128, 64, 128), (10, 200, 30)), split=(1, 1))
    sample = open_split(cfg, "val")
    assert sample.info.palette[1] == (128, 64, 128)
    np.testing.assert_array_equal(sample.load(0)[1], stripes(0, 1, 2, 255))
    with pytest.raises(RtsegError, match="colour image"):
        open_split(replace(cfg, palette=None), "val").load(0)
    with pytest.raises(RtsegError, match="2 colours for 3 classes"):
        open_split(replace(cfg, palette=((0, 0, 0), (1, 1, 1))), "val")


def test_folder_split_folders(tmp_path):
    folder_set(tmp_path / "train", 3)
    folder_set(tmp_path / "val", 2)
    cfg = DataConfig(kind="folder", root=str(tmp_path), classes=("a", "b", "c"))
    assert len(open_split(cfg, "train")) == 3 and len(open_split(cfg, "val")) == 2
    with pytest.raises(RtsegError, match="missing split folder .*test"):
        open_split(cfg, "test")


def test_folder_errors(tmp_path):
    cfg = DataConfig(kind="folder", root=str(tmp_path), classes=("a", "b", "c"), split=(1, 1))
    with pytest.raises(RtsegError, match="does not exist"):
        open_split(replace(cfg, root=str(tmp_path / "nope")), "train")
    folder_set(tmp_path, 4)
    with pytest.raises(RtsegError, match=r"classes = \["):
        open_split(replace(cfg, classes=None), "train")
    with pytest.raises(RtsegError, match="no samples"):
        open_split(replace(cfg, split=(1.0, 0.0)), "val")
    write_image(tmp_path / "images" / "lonely.png")
    write_label(tmp_path / "masks" / "orphan.png", stripes(0, 1))
    with pytest.raises(RtsegError, match=r"no partner .*\['lonely'\]"):
        open_split(cfg, "train")
    (tmp_path / "masks" / "orphan.png").unlink()
    write_label(tmp_path / "masks" / "lonely.png", np.zeros((H, W - 1), np.uint8))
    (tmp_path / "images" / "f00.png").write_bytes(b"not a png")
    train, val = open_split(cfg, "train"), open_split(cfg, "val")
    ids = {**dict(zip(train.names, train.ids)), **dict(zip(val.names, val.ids))}
    loader = train.loader
    with pytest.raises(RtsegError, match="cannot read image .*f00.png"):
        loader(ids["f00"])
    with pytest.raises(RtsegError, match=rf"lonely.png is {H}x{W - 1} .* is {H}x{W}"):
        loader(ids["lonely"])


def test_unknown_kind_and_split(tmp_path):
    with pytest.raises(RtsegError, match="camvid.*cityscapes.*coco.*folder.*voc"):
        open_split(DataConfig(kind="kitti", root=str(tmp_path)), "train")
    with pytest.raises(RtsegError, match="unknown split 'dev'"):
        open_split(DataConfig(kind="voc", root=str(tmp_path)), "dev")


def test_sample_sets_pickle_for_workers(tmp_path):
    folder_set(tmp_path / "idx", 2)
    plain = DataConfig(kind="folder", root=str(tmp_path / "idx"), classes=("a", "b", "c"),
                       split=(1, 1))
    binary = replace(plain, classes=("a", "b"))
    colour = replace(plain, palette=((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    for cfg in (plain, binary, colour):
        samples = open_split(cfg, "train")
        again = pickle.loads(pickle.dumps(samples))
        assert again.names == samples.names
        np.testing.assert_array_equal(again.load(0)[1], samples.load(0)[1])


# ----------------------------------------------------------------------------- COCO

def runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts of a (H, W) bool mask, written out plainly for the test."""
    counts, current, length = [], False, 0
    for value in np.asarray(mask, bool).flatten(order="F"):
        if value != current:
            counts.append(length)
            current, length = value, 0
        length += 1
    return counts + [length]


def box(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[rows, cols] = True
    return mask


def annotation(image_id: int, category: int, segmentation, crowd: int = 0) -> dict:
    return {"id": 0, "image_id": image_id, "category_id": category, "iscrowd": crowd,
            "segmentation": segmentation, "bbox": [0, 0, 1, 1], "area": 1}


CATEGORIES = [{"id": 0, "name": "roads", "supercategory": "none"},
              {"id": 1, "name": "road", "supercategory": "roads"},
              {"id": 2, "name": "car", "supercategory": "roads"},
              {"id": 3, "name": "tree", "supercategory": "roads"}]


def write_coco(path: Path, images: dict[str, list], size=(H, W), image_dir: Path | None = None):
    """One COCO file; images: file name -> annotations (image_id filled in); the pictures
    are written to `image_dir` (default: beside the file)."""
    entries, anns = [], []
    for number, (name, own) in enumerate(images.items(), 1):
        write_image((image_dir or path.parent) / name, seed=number)
        entries.append({"id": number, "file_name": name, "height": size[0], "width": size[1]})
        anns += [{**a, "image_id": number, "id": len(anns) + k} for k, a in enumerate(own)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": entries, "annotations": anns,
                                "categories": CATEGORIES}))


def roboflow(root: Path) -> np.ndarray:
    """Roboflow layout train (3) / valid (1) / test (1); returns the expected mask of a.png."""
    top = box(slice(0, 2), slice(None))
    car = box(slice(20, 25), slice(30, 40))
    write_coco(root / "train" / "_annotations.coco.json", {
        "a.png": [annotation(0, 1, [[2, 3, 12, 3, 12, 9, 2, 9]]),
                  annotation(0, 2, {"size": [H, W], "counts": runs(car)}),
                  annotation(0, 2, coco.rle_encode(top)),
                  annotation(0, 1, [[40, 28, 48, 28, 48, 32, 40, 32]], crowd=1),
                  annotation(0, 2, [[8, 4, 10, 4, 10, 6, 8, 6]])],
        "b.png": [],
        "c.png": [annotation(0, 1, [])]})
    write_coco(root / "valid" / "_annotations.coco.json",
               {"d.png": [annotation(0, 1, coco.rle_encode(car))]})
    write_coco(root / "test" / "_annotations.coco.json", {"e.png": []})
    expected = np.zeros((H, W), np.uint8)
    expected[3:9, 2:12] = 1
    expected[car] = 2
    expected[top] = 2
    expected[28:32, 40:48] = 255
    expected[4:6, 8:10] = 2
    return expected


def test_coco_roboflow_layout(tmp_path):
    expected = roboflow(tmp_path)
    cfg = DataConfig(kind="coco", root=str(tmp_path))
    train = open_split(cfg, "train")
    assert train.names == ("a", "b", "c")
    assert train.info.classes == ("background", "road", "car") and train.info.drivable == ()
    image, mask = train.load(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, expected)
    assert not train.load(1)[1].any() and not train.load(2)[1].any()
    val = open_split(cfg, "val")
    assert val.names == ("d",)
    np.testing.assert_array_equal(val.load(0)[1], box(slice(20, 25), slice(30, 40)))
    assert len(open_split(cfg, "test")) == 1
    again = pickle.loads(pickle.dumps(train))
    np.testing.assert_array_equal(again.load(0)[1], expected)
    swapped = open_split(replace(cfg, classes=("background", "car", "road")), "val")
    np.testing.assert_array_equal(swapped.load(0)[1], box(slice(20, 25), slice(30, 40)) * 2)
    with pytest.raises(RtsegError, match=r"\['car'\] are not in \[data\] classes"):
        open_split(replace(cfg, classes=("background", "road")), "val")


def test_coco_single_file_split_by_ratios(tmp_path):
    names = {f"p{i}.png": [annotation(0, 2, [[0, 0, 4, 0, 4, 4, 0, 4]])] for i in range(6)}
    write_coco(tmp_path / "annotations" / "all.json", names, image_dir=tmp_path / "images")
    cfg = DataConfig(kind="coco", root=str(tmp_path), annotations="annotations/all.json",
                     split=(0.5, 0.5), seed=1)
    train, val = open_split(cfg, "train"), open_split(cfg, "val")
    assert len(train) == 3 and len(val) == 3 and not set(train.names) & set(val.names)
    assert train.names == open_split(cfg, "train").names
    assert train.info.classes == ("background", "car") and train.info.drivable == ("car",)
    np.testing.assert_array_equal(val.load(2)[1], box(slice(0, 4), slice(0, 4)))
    with pytest.raises(RtsegError, match="no test part"):
        open_split(cfg, "test")


def test_coco_errors(tmp_path):
    cfg = DataConfig(kind="coco", root=str(tmp_path))
    with pytest.raises(RtsegError, match="no \\*/_annotations.coco.json"):
        open_split(cfg, "train")
    with pytest.raises(RtsegError, match="missing.json does not exist"):
        open_split(replace(cfg, annotations="missing.json"), "train")
    write_coco(tmp_path / "train" / "_annotations.coco.json",
               {"a.png": [annotation(0, 1, [[0, 0, 4, 0, 4, 4]])]}, size=(H - 2, W))
    with pytest.raises(RtsegError, match="missing split folder .*test"):
        open_split(cfg, "test")
    train = open_split(cfg, "train")
    with pytest.raises(RtsegError, match=rf"COCO JSON .* is {H - 2}x{W} .*a.png is {H}x{W}"):
        train.load(0)
    (tmp_path / "train" / "a.png").unlink()
    with pytest.raises(RtsegError, match=r"not beside it .*\['a.png'\]"):
        open_split(cfg, "train")
    write_coco(tmp_path / "boxes.json", {"z.png": [annotation(0, 1, [])]})
    with pytest.raises(RtsegError, match="has a segmentation"):
        open_split(replace(cfg, annotations="boxes.json"), "train")


def test_rle_known_strings():
    # Published pairs (COCO's string form): runs [0, 6, 1, 3] -> "061M", [0, 1024] -> "0PP1".
    assert coco.counts_from_string("061M") == [0, 6, 1, 3]
    assert coco.counts_from_string(b"0PP1") == [0, 1024]
    assert coco.counts_to_string([0, 6, 1, 3]) == "061M"
    # Worked by hand from the spec: multi-character runs and negative differences.
    assert coco.counts_to_string([40, 3, 60, 2, 35]) == "X13l1OWO"
    assert coco.counts_from_string("X13l1OWO") == [40, 3, 60, 2, 35]
    # 2 x 5 mask, column-major: 6 ones, 1 zero, 3 ones.
    expected = np.array([[1, 1, 1, 0, 1], [1, 1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(coco.rle_decode([0, 6, 1, 3], 2, 5), expected)
    with pytest.raises(RtsegError, match="sum to 10 .* 12 pixels"):
        coco.rle_decode([0, 6, 1, 3], 3, 4)


def test_rle_encoder_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((rng.integers(1, 12), rng.integers(1, 12))) < 0.4
        rle = coco.rle_encode(mask)
        assert coco.counts_from_string(rle["counts"]) == runs(mask)
        np.testing.assert_array_equal(coco.segmentation_mask(rle, *mask.shape), mask)


def test_polygon_covers_pixel_centres():
    square = coco.polygon_mask(np.array([0, 0, 9, 0, 9, 9, 0, 9.0]), 12, 12)
    np.testing.assert_array_equal(square, box(slice(0, 9), slice(0, 9))[:12, :12])
    triangle = coco.polygon_mask(np.array([0, 0, 10, 0, 0, 10.0]), 12, 12)
    rows, cols = np.indices((12, 12))
    np.testing.assert_array_equal(triangle, rows + cols < 9)
    outside = coco.polygon_mask(np.array([-5, -5, 3.5, -5, 3.5, 2.5, -5, 2.5]), 6, 6)
    np.testing.assert_array_equal(outside, box(slice(0, 2), slice(0, 3))[:6, :6])


@pytest.mark.skipif(coco._pycocotools_mask() is None, reason="pycocotools not installed")
def test_own_decoder_matches_pycocotools(monkeypatch):
    mask = np.random.default_rng(1).random((H, W)) < 0.3
    shapes = [coco.rle_encode(mask), {"size": [H, W], "counts": runs(mask)},
              [[2, 3, 12, 3, 12, 9, 2, 9]]]
    with_api = [coco.segmentation_mask(s, H, W) for s in shapes]
    monkeypatch.setattr(coco, "_pycocotools_mask", lambda: None)
    for seg, theirs in zip(shapes, with_api):
        np.testing.assert_array_equal(coco.segmentation_mask(seg, H, W), theirs)


# ----------------------------------------------------------------------------- Cityscapes

def write_cityscapes(root: Path, split: str, frames: list[tuple[str, str]]) -> None:
    for city, frame in frames:
        write_image(root / "leftImg8bit" / split / city / f"{city}_{frame}_leftImg8bit.png")
        write_label(root / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelIds.png",
                    stripes(7, 4, 26, 33))


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    write_cityscapes(tmp_path, "train", [("zurich", "000001_000019"),
                                         ("aachen", "000000_000019")])
    write_cityscapes(tmp_path, "val", [("frankfurt", "000000_000294")])
    cfg = DataConfig(kind="cityscapes", root=str(tmp_path))
    train = open_split(cfg, "train")
    assert train.names == ("aachen_000000_000019_leftImg8bit", "zurich_000001_000019_leftImg8bit")
    assert len(train.info.classes) == 19 and train.info.classes[13] == "car"
    assert train.info.drivable == ("road",) and train.info.palette[0] == (128, 64, 128)
    image, mask = train.load(1)
    assert image.shape == (H, W, 3) and mask.shape == (H, W) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, stripes(0, 255, 13, 18))
    assert len(open_split(cfg, "val")) == 1
    with pytest.raises(RtsegError, match="missing split folder .*leftImg8bit/test"):
        open_split(cfg, "test")
    renamed = open_split(replace(cfg, classes=tuple(f"c{i}" for i in range(19))), "val")
    assert renamed.info.drivable == ("c0",)
    with pytest.raises(RtsegError, match="has 2 names but cityscapes has 19"):
        open_split(replace(cfg, classes=("a", "b")), "val")
    (tmp_path / "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png").unlink()
    with pytest.raises(RtsegError, match="1 Cityscapes label file.*frankfurt_000000_000294"):
        open_split(cfg, "val")


# ----------------------------------------------------------------------------- VOC

def write_voc(root: Path, splits: dict[str, list[str]]) -> None:
    palette = [v for colour in voc_palette(256) for v in colour]
    for split, ids in splits.items():
        listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{i}\n" for i in ids))
        for i in ids:
            bgr = np.full((H, W, 3), (200, 100, 10), np.uint8)  # RGB (10, 100, 200)
            (root / "JPEGImages").mkdir(exist_ok=True)
            assert cv2.imwrite(str(root / "JPEGImages" / f"{i}.jpg"), bgr)
            write_label(root / "SegmentationClass" / f"{i}.png", stripes(0, 15, 255, 7),
                        palette=palette)


def test_voc_reads_palette_indices(tmp_path):
    write_voc(tmp_path, {"train": ["2007_000032", "2007_000033"], "val": ["2007_000039"]})
    cfg = DataConfig(kind="voc", root=str(tmp_path))
    train = open_split(cfg, "train")
    assert len(train) == 2 and len(open_split(cfg, "val")) == 1
    assert len(train.info.classes) == 21 and train.info.classes[15] == "person"
    assert train.info.drivable == () and train.info.palette[15] == (192, 128, 128)
    label = tmp_path / "SegmentationClass" / "2007_000032.png"
    assert Image.open(label).mode == "P"
    assert tuple(cv2.imread(str(label))[0, W // 4][::-1]) == (192, 128, 128)  # colours
    image, mask = train.load(0)
    assert image.shape == (H, W, 3) and mask.dtype == np.uint8
    assert np.abs(image.astype(int) - (10, 100, 200)).max() <= 3  # RGB order
    np.testing.assert_array_equal(mask, stripes(0, 15, 255, 7))
    with pytest.raises(RtsegError, match="missing split file .*test.txt"):
        open_split(cfg, "test")
    (tmp_path / "JPEGImages" / "2007_000039.jpg").unlink()
    with pytest.raises(RtsegError, match="1 VOC file.*2007_000039.jpg"):
        open_split(cfg, "val")


# ----------------------------------------------------------------------------- CamVid

def write_camvid(root: Path, splits: dict[str, list[str]], absolute: bool = False) -> None:
    for split, names in splits.items():
        lines = []
        for name in names:
            write_image(root / split / f"{name}.png")
            write_label(root / f"{split}annot" / f"{name}.png", stripes(3, 11, 8, 0))
            prefix = "/SegNet/CamVid/" if absolute else ""
            lines.append(f"{prefix}{split}/{name}.png {prefix}{split}annot/{name}.png\n")
        (root / f"{split}.txt").write_text("".join(lines))


def test_camvid_segnet_layout(tmp_path):
    write_camvid(tmp_path, {"train": ["0001TP_006720", "0001TP_006690"], "val": ["0016E5_07959"],
                            "test": ["0001TP_008550"]})
    cfg = DataConfig(kind="camvid", root=str(tmp_path))
    train = open_split(cfg, "train")
    assert train.names == ("0001TP_006690", "0001TP_006720")
    assert len(open_split(cfg, "val")) == 1 and len(open_split(cfg, "test")) == 1
    assert train.info.classes[3] == "Road" and len(train.info.classes) == 11
    assert train.info.drivable == ("Road",) and train.info.palette == CAMVID_PALETTE
    image, mask = train.load(0)
    assert image.shape == (H, W, 3) and mask.shape == (H, W) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, stripes(3, 255, 8, 0))
    rgba = np.zeros((1, 256, 4), np.uint8)
    rgba[0, :, :3] = np.arange(256)[:, None] // 2
    rgba[0, 0] = (1, 2, 3, 255)
    Image.fromarray(rgba).save(tmp_path / "palette.png")
    palette = open_split(cfg, "val").info.palette
    assert palette[0] == (1, 2, 3) and palette[10] == (5, 5, 5) and len(palette) == 11
    again = pickle.loads(pickle.dumps(train))
    np.testing.assert_array_equal(again.load(0)[1], mask)


def test_camvid_segnet_absolute_paths_and_errors(tmp_path):
    write_camvid(tmp_path, {"train": ["a", "b"]}, absolute=True)
    cfg = DataConfig(kind="camvid", root=str(tmp_path))
    assert open_split(cfg, "train").ids[0] == (str(tmp_path / "train" / "a.png"),
                                               str(tmp_path / "trainannot" / "a.png"))
    with pytest.raises(RtsegError, match="missing split file .*val.txt"):
        open_split(cfg, "val")
    (tmp_path / "trainannot" / "b.png").unlink()
    with pytest.raises(RtsegError, match=r"1 CamVid file.*trainannot/b.png"):
        open_split(cfg, "train")
    (tmp_path / "val.txt").write_text("val/a.png\n")
    with pytest.raises(RtsegError, match="line 1 .* expected `image label`"):
        open_split(cfg, "val")
    (tmp_path / "val.txt").write_text("")
    with pytest.raises(RtsegError, match="has no samples"):
        open_split(cfg, "val")


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"no CamVid copy at {CAMVID}")
def test_real_camvid_copy():
    cfg = DataConfig(kind="camvid", root=str(CAMVID))
    train, val = open_split(cfg, "train"), open_split(cfg, "val")
    assert (len(train), len(val)) == (367, 101)
    assert train.info.palette[3] == (128, 64, 128) and train.info.drivable == ("Road",)
    for samples in (train, val):
        image, mask = samples.load(len(samples) // 2)
        assert image.shape == (360, 480, 3) and image.dtype == np.uint8
        assert mask.shape == (360, 480) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= set(range(11)) | {255}
        assert (mask == 3).any()  # a road scene has road
