"""How sure is a CamVid val figure: bootstrap intervals over the 101 val frames.

    python benchmarks/camvid_bootstrap.py --name camvid-bootstrap \
        --checkpoint benchmarks/models/camvid.pt [--against OTHER.pt] \
        [--root ../shared/data/camvid] [--reps 10000]

Val is 101 frames of a handful of drives, so a target like Road IoU >= 97 is read off a
small sample. Each frame's confusion matrix is computed once with the node's preprocessing
at the checkpoint's own size (RGB resized bilinearly, normalised; logits resized
bilinearly to the 360x480 label, argmax: `rtseg eval --data camvid` to the last pixel);
then `--reps` resamples of the frames with replacement (a seeded generator) give the
2.5-97.5 % interval of mIoU and of each class's IoU, the share of resamples in which Road
reaches 97 and mIoU 70 (issue 13's targets), and with `--against` the paired difference
(both checkpoints on the same resampled frames). Writes results/NAME.json and NAME.md.
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

RESULTS = Path(__file__).resolve().parent / "results"
ROAD_TARGET = 0.97
MIOU_TARGET = 0.70


def frame_confusions(path: str, root: str) -> tuple[np.ndarray, list[str]]:
    """(N, C, C) int64 confusion matrix of each val frame (row: truth, column: prediction,
    ignored pixels left out), and the class names."""
    ckpt = load_checkpoint(path)
    meta, model = ckpt.meta, ckpt.build("cpu")
    h, w = meta.input_size
    n = len(meta.classes)
    mean, std = np.float32(meta.mean), np.float32(meta.std)
    samples = open_data(DataConfig(kind="camvid", root=root, height=h, width=w), "val")
    out = np.zeros((len(samples), n, n), np.int64)
    with torch.inference_mode():
        for i in range(len(samples)):
            image, truth = samples.load(i)
            x = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            x = torch.from_numpy((x.astype(np.float32) / 255.0 - mean) / std).permute(2, 0, 1)
            logits = F.interpolate(model(x[None]), size=truth.shape, mode="bilinear",
                                   align_corners=False)
            pred = logits[0].argmax(0).numpy()
            keep = truth != meta.ignore_index
            out[i] = np.bincount(truth[keep].astype(np.int64) * n + pred[keep],
                                 minlength=n * n).reshape(n, n)
    return out, list(meta.classes)


def ious(cm: np.ndarray) -> np.ndarray:
    """(..., C, C) confusion -> (..., C) IoU (0 where a class is absent from both)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(-1) + cm.sum(-2) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), 0.0)


def resampled(cms: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """(N, C, C) per-frame confusions, (R, N) frame indices -> (R, C) IoU per resample."""
    counts = np.zeros(picks.shape, np.int64)  # (R, N): how often each frame was drawn
    np.add.at(counts, (np.arange(len(picks))[:, None], picks), 1)
    n, c = cms.shape[0], cms.shape[1]
    return ious((counts @ cms.reshape(n, c * c)).reshape(-1, c, c))


def interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def summarise(cms: np.ndarray, per: np.ndarray, classes: list[str]) -> dict:
    """Point figures of all frames, and the bootstrap intervals of `per` (R, C)."""
    road = classes.index("Road")
    point = ious(cms.sum(0))
    return {"miou": float(point.mean()), "miou_ci": interval(per.mean(1)),
            "iou": dict(zip(classes, map(float, point), strict=True)),
            "iou_ci": {c: interval(per[:, j]) for j, c in enumerate(classes)},
            "road_reaches_target": float((per[:, road] >= ROAD_TARGET).mean()),
            "miou_reaches_target": float((per.mean(1) >= MIOU_TARGET).mean())}


def to_markdown(result: dict) -> str:
    a = result["checkpoint"]
    lines = [f"# {result['name']}: bootstrap intervals on CamVid val", "",
             f"`{result['command']}`  ",
             f"Recorded {result['date']}; {result['frames']} val frames, {result['reps']} "
             "resamples of the frames (seed 0), 2.5-97.5 % intervals.", "",
             "| class | IoU | interval |", "|---|---|---|",
             f"| **mIoU** | {100 * a['miou']:.2f} | {100 * a['miou_ci'][0]:.2f}-"
             f"{100 * a['miou_ci'][1]:.2f} |"]
    lines += [f"| {c} | {100 * v:.2f} | {100 * a['iou_ci'][c][0]:.2f}-"
              f"{100 * a['iou_ci'][c][1]:.2f} |" for c, v in a["iou"].items()]
    lines += ["", f"Road >= {100 * ROAD_TARGET:.0f} in {100 * a['road_reaches_target']:.1f} % "
              f"of the resamples, mIoU >= {100 * MIOU_TARGET:.0f} in "
              f"{100 * a['miou_reaches_target']:.1f} %."]
    if "against" in result:
        d = result["paired"]
        lines += ["", f"Against `{result['against_path']}` (mIoU "
                  f"{100 * result['against']['miou']:.2f}, Road "
                  f"{100 * result['against']['iou']['Road']:.2f}), paired on the same "
                  f"resamples: mIoU difference {100 * d['miou_ci'][0]:+.2f} to "
                  f"{100 * d['miou_ci'][1]:+.2f}, Road {100 * d['road_ci'][0]:+.2f} to "
                  f"{100 * d['road_ci'][1]:+.2f} (this one higher on Road in "
                  f"{100 * d['road_higher']:.1f} % of them)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="benchmarks/models/camvid.pt")
    parser.add_argument("--against")
    parser.add_argument("--root", default="../shared/data/camvid")
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    cms, classes = frame_confusions(args.checkpoint, args.root)
    picks = np.random.default_rng(0).integers(0, len(cms), (args.reps, len(cms)))
    per = resampled(cms, picks)
    command = (f"python benchmarks/camvid_bootstrap.py --name {args.name} --checkpoint "
               f"{args.checkpoint}" + (f" --against {args.against}" if args.against else "")
               + f" --reps {args.reps}")
    result = {"name": args.name, "command": command, "frames": len(cms), "reps": args.reps,
              "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
              "checkpoint": summarise(cms, per, classes)}
    if args.against:
        other, _ = frame_confusions(args.against, args.root)
        per_other = resampled(other, picks)
        road = classes.index("Road")
        result |= {"against_path": args.against, "against": summarise(other, per_other, classes),
                   "paired": {"miou_ci": interval(per.mean(1) - per_other.mean(1)),
                              "road_ci": interval(per[:, road] - per_other[:, road]),
                              "road_higher": float((per[:, road] > per_other[:, road]).mean())}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
