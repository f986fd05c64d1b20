"""How far inference-time changes move a CamVid checkpoint: the headroom of one network.

    python benchmarks/camvid_headroom.py --checkpoint benchmarks/models/camvid.pt \
        --name camvid-headroom-stage13 [--sizes 352x480 416x576 448x608] \
        [--taus 0 0.25 0.5 0.75 1] [--root ../shared/data/camvid] [--split val]

On CamVid's 101 val frames (or its 367 train frames with `--split train`), with the node's
preprocessing (RGB resized bilinearly to the network size, normalised; logits resized
bilinearly to the 360x480 label, argmax; at the checkpoint's own size this is `rtseg eval
--data camvid` to the last pixel), it scores:

- the network at each of `--sizes` (it is fully convolutional; the engine's cost grows with
  the pixels);
- test-time augmentation: mirrored + plain at each size, all sizes (softmax mean), all
  sizes mirrored and plain: what an ensemble of views of this one network reaches;
- logit adjustment at the checkpoint's size: logits - tau * log(w), w the recipe's
  `class_weights` (a loss weighted by w shifts the learnt logits by about log w; tau = 1
  takes that shift back out): how much of the frequent classes' shortfall is the weighting;
- where Road's pixels went, and what was taken for Road, at the checkpoint's size.

None of this is what the node does. It tells what a target asks of the network itself:
a figure that even the full ensemble does not reach needs a better network, not a trick.
Writes results/NAME.json and results/NAME.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from rtseg.checkpoint import load_checkpoint
from rtseg.config import DataConfig
from rtseg.data.datasets import open_data
from rtseg.metrics import ConfusionMatrix

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = ("Road", "Pavement", "Pole", "SignSymbol", "Pedestrian", "Bicyclist")


def views(model, image: np.ndarray, sizes, mean, std, out_hw) -> dict:
    """(H, W, 3) uint8 RGB -> {(size, mirrored): (C, h, w) float32 logits at `out_hw`}."""
    result = {}
    for size in sizes:
        x = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        x = (x.astype(np.float32) / 255.0 - mean) / std
        batch = torch.from_numpy(x).permute(2, 0, 1)[None]
        logits = model(torch.cat([batch, batch.flip(-1)]))
        logits = torch.stack([logits[0], logits[1].flip(-1)])
        logits = F.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)
        result[(size, False)], result[(size, True)] = logits[0], logits[1]
    return result


def combos(sizes, own) -> dict:
    """Name -> the views it averages (softmax mean; one view: its logits' argmax).

    Besides each size alone and mirrored at that size: the checkpoint's own size plus a
    mirrored view at each other size (a second view that costs less than the first).
    """
    named = {f"{h}x{w}": [((h, w), False)] for h, w in sizes}
    named |= {f"{h}x{w} + mirrored": [((h, w), False), ((h, w), True)] for h, w in sizes}
    if own in sizes:
        named |= {f"{own[0]}x{own[1]} + {h}x{w} mirrored": [(own, False), ((h, w), True)]
                  for h, w in sizes if (h, w) != own}
    named["all sizes"] = [(s, False) for s in sizes]
    named["all sizes + mirrored"] = [(s, m) for s in sizes for m in (False, True)]
    return named


def score(ckpt, samples, sizes, taus) -> dict:
    """Confusion matrices of every combination and every tau, over all samples."""
    model, meta = ckpt.build("cpu"), ckpt.meta
    own = tuple(meta.input_size)
    mean, std = np.float32(meta.mean), np.float32(meta.std)
    weights = meta.recipe.get("train", {}).get("class_weights") or [1.0] * len(meta.classes)
    log_w = torch.tensor(weights, dtype=torch.float32).log()[:, None, None]
    n, ignore = len(meta.classes), meta.ignore_index
    named = combos(sizes, own)
    cms = {k: ConfusionMatrix(n, ignore) for k in named}
    adjusted = {t: ConfusionMatrix(n, ignore) for t in taus}
    with torch.inference_mode():
        for i in range(len(samples)):
            image, truth = samples.load(i)
            logits = views(model, image, sizes, mean, std, truth.shape)
            for name, keys in named.items():
                probs = (sum(logits[k].softmax(0) for k in keys) if len(keys) > 1
                         else logits[keys[0]])
                cms[name].update(probs.argmax(0).numpy().astype(np.uint8), truth)
            for tau in taus:
                pred = (logits[(own, False)] - tau * log_w).argmax(0)
                adjusted[tau].update(pred.numpy().astype(np.uint8), truth)
    return {"combos": cms, "adjusted": adjusted, "weights": weights, "own": own}


def figures(cm: ConfusionMatrix, classes) -> dict:
    m = cm.compute().as_dict(classes)
    return {"miou": m["miou"], "pixel_accuracy": m["pixel_accuracy"], "iou": m["iou"]}


def road_confusion(cm: ConfusionMatrix, classes) -> dict:
    """Road's row (its pixels, called what) and column (called Road, truly what)."""
    r = list(classes).index("Road")
    mat = cm.matrix
    return {"pixels": int(mat[r].sum()), "correct": int(mat[r, r]),
            "missed_as": {c: int(mat[r, j]) for j, c in enumerate(classes) if j != r},
            "taken_for_road": {c: int(mat[j, r]) for j, c in enumerate(classes) if j != r}}


def to_markdown(result: dict) -> str:
    """Tables: views, logit adjustment, Road's confusion."""
    cols = " | ".join(SHOWN)
    head = [f"| {{}} | mIoU | pixel acc. | {cols} |", "|---|---|---|" + "---|" * len(SHOWN)]

    def row(label, f):
        per = " | ".join(f"{100 * f['iou'][c]:.2f}" for c in SHOWN)
        return f"| {label} | {100 * f['miou']:.2f} | {100 * f['pixel_accuracy']:.2f} | {per} |"

    road = result["road"]
    lines = [f"# {result['name']}: what inference-time changes give {result['checkpoint']}", "",
             f"`{result['command']}`  ",
             f"Recorded {result['date']}, {result['seconds']:.0f} s; CamVid "
             f"{result.get('split', 'val')} "
             f"({result['images']} frames), the node's preprocessing; mIoU over 11 classes.",
             "", "## Network sizes and test-time augmentation (softmax mean of the views)", "",
             head[0].format("views"), head[1]]
    lines += [row(k, f) for k, f in result["views"].items()]
    lines += ["", "## Logit adjustment at the checkpoint's size: logits - tau * log(class "
              "weight)", "", f"class weights of the recipe: {result['weights']}", "",
              head[0].format("tau"), head[1]]
    lines += [row(k, f) for k, f in result["adjusted"].items()]
    missed = ", ".join(f"{c} {v}" for c, v in road["missed_as"].items() if v)
    taken = ", ".join(f"{c} {v}" for c, v in road["taken_for_road"].items() if v)
    lines += ["", "## Road at the checkpoint's size", "",
              f"Road pixels {road['pixels']}, correct {road['correct']}; missed as: {missed}; "
              f"taken for Road: {taken}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="benchmarks/models/camvid.pt")
    parser.add_argument("--root", default="../shared/data/camvid")
    parser.add_argument("--sizes", nargs="+", default=["352x480", "416x576", "448x608"])
    parser.add_argument("--taus", nargs="+", type=float, default=[0, 0.25, 0.5, 0.75, 1])
    parser.add_argument("--split", choices=("val", "train"), default="val")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    own = tuple(ckpt.meta.input_size)
    sizes = [own] + [s for s in sizes if s != own]
    samples = open_data(DataConfig(kind="camvid", root=args.root, height=own[0],
                                   width=own[1]), args.split)
    start = time.perf_counter()
    scored = score(ckpt, samples, sizes, args.taus)
    classes = ckpt.meta.classes
    result = {
        "name": args.name, "checkpoint": args.checkpoint, "images": len(samples),
        "split": args.split,
        "command": "python benchmarks/camvid_headroom.py " + " ".join(
            [f"--checkpoint {args.checkpoint}", f"--name {args.name}",
             "--sizes " + " ".join(args.sizes), "--taus " + " ".join(map(str, args.taus)),
             f"--split {args.split}"]),
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "seconds": time.perf_counter() - start, "weights": scored["weights"],
        "views": {k: figures(cm, classes) for k, cm in scored["combos"].items()},
        "adjusted": {str(t): figures(cm, classes) for t, cm in scored["adjusted"].items()},
        "road": road_confusion(scored["combos"][f"{own[0]}x{own[1]}"], classes)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = to_markdown(result)
    (RESULTS / f"{args.name}.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
