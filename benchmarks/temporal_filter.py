"""Would a temporal filter of the published drivable area pay on a real drive? Filters of
the drivable masks of a frame sequence against no filter: "confirm N" (a pixel turns
drivable only after N frames in a row saw it so, and turns back at once: never delays an
obstacle), a symmetric majority vote of the last k frames, and, as the per-frame way to
the same trade, the drivable area eroded by a few pixels.

    python benchmarks/temporal_filter.py [--model benchmarks/models/camvid.pt] \
        [--root ../shared/data/camvid] [--split val] [--name RESULT]
    python benchmarks/temporal_filter.py --model demo --demo 300 [--name RESULT]

The frames of the split are segmented in name order, as the node would (its CPU pipeline:
argmax at the network's size, nearest resize), each frame once; every filter then runs on
that sequence of drivable masks. CamVid's val split is sequence 0016E5, labelled at 15 Hz
(frame numbers 2 apart in a 30 Hz video): a real 6.7 s drive. `--demo N`: N frames of the
demo generator's drive (rtseg.data.synthetic.SceneStream) with their exact labels.

Per filter, over the labelled pixels of all frames: drivable IoU, precision, recall, false
drivable (published drivable where the label is not, as a share of the not-drivable
pixels: the error a planner pays for), missed drivable (share of the drivable pixels), and
flicker: pixels whose published value changes from one frame to the next while their label
does not (share of the pixels labelled in both frames). Also the filter's cost per call on
a 1080p mask. `--name` writes results/NAME.json and NAME.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
IGNORE = 255


def segment_camvid(model: str, root: str, split: str) -> tuple[list, list]:
    """Predicted and labelled drivable masks (H, W) uint8 of the split's frames in name
    order; labels 0/1, IGNORE where unlabelled."""
    from rtseg.backends import load_backend
    from rtseg.config import DataConfig
    from rtseg.data.datasets import open_data
    from rtseg.metrics import drivable_scoring_lut
    from rtseg.stream.pipeline import Pipeline

    pipeline = Pipeline(load_backend(model, "cpu"), upsample="classes")
    spec = pipeline.spec
    h, w = spec.input_size
    samples = open_data(DataConfig(kind="camvid", root=root, height=h, width=w), split)
    lut = drivable_scoring_lut(len(spec.classes), spec.drivable_ids, IGNORE)
    preds, labels = [], []
    for i in range(len(samples)):
        image, truth = samples.load(i)
        preds.append(pipeline(np.ascontiguousarray(image[:, :, ::-1])).drivable.copy())
        labels.append(lut[truth])
    return preds, labels


def segment_demo(model: str, frames: int) -> tuple[list, list]:
    """The same for `frames` frames of the demo drive (exact labels)."""
    from rtseg.backends import load_backend
    from rtseg.data.synthetic import SceneStream, drivable_mask
    from rtseg.stream.pipeline import Pipeline

    pipeline = Pipeline(load_backend(model, "cpu"), upsample="classes")
    stream = SceneStream(seed=0)
    preds, labels = [], []
    for _ in range(frames):
        rgb, label = stream.next()
        preds.append(pipeline(np.ascontiguousarray(rgb[:, :, ::-1])).drivable.copy())
        labels.append(drivable_mask(label))
    return preds, labels


def confirm(frames: int):
    """The filter measured: a pixel is drivable once the last `frames` frames all saw it
    drivable, and stops at the first frame that does not (so it never delays an obstacle,
    only road that appears). `frames` 1: no filter."""
    counts: list[np.ndarray] = []

    def step(mask: np.ndarray) -> np.ndarray:
        if not counts:
            counts.append(np.zeros(mask.shape, np.uint8))
        run = counts[0]
        np.minimum(run, frames - 1, out=run)
        run += 1
        run *= mask.astype(bool)
        return (run >= frames).view(np.uint8)
    return step


def vote(k: int):
    """Symmetric comparison: drivable where most of the last k frames say so (also delays
    obstacles, which the node's filter never does)."""
    history: list[np.ndarray] = []

    def step(mask: np.ndarray) -> np.ndarray:
        history.append(mask.astype(np.uint16))
        del history[:-k]
        return (2 * sum(history) > len(history)).astype(np.uint8)
    return step


def erode(pixels: int):
    """Per-frame comparison without lag: the drivable area shrunk by `pixels` on every
    side (a square kernel), which also trades recall for fewer false drivable pixels."""
    import cv2

    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return lambda mask: cv2.erode(mask, kernel)


def score(published: list, labels: list) -> dict:
    """The metrics of the module doc, in percent."""
    tp = fp = fn = neg = pos = flicker = both = 0
    for i, (p, t) in enumerate(zip(published, labels)):
        known = t != IGNORE
        tp += int(np.sum((p == 1) & (t == 1)))
        fp += int(np.sum((p == 1) & (t == 0)))
        fn += int(np.sum((p == 0) & (t == 1)))
        neg += int(np.sum(t == 0))
        pos += int(np.sum(t == 1))
        if i:
            steady = known & (labels[i - 1] != IGNORE) & (t == labels[i - 1])
            flicker += int(np.sum(steady & (p != published[i - 1])))
            both += int(np.sum(known & (labels[i - 1] != IGNORE)))
    pct = lambda a, b: round(100.0 * a / max(b, 1), 3)  # noqa: E731
    return {"iou": pct(tp, tp + fp + fn), "precision": pct(tp, tp + fp),
            "recall": pct(tp, tp + fn), "false_drivable": pct(fp, neg),
            "missed_drivable": pct(fn, pos), "flicker": pct(flicker, both)}


def cost_ms(frames: int, calls: int = 50) -> float:
    """Median ms of one `confirm(frames)` step on a 1080x1920 mask."""
    rng = np.random.default_rng(0)
    masks = [(rng.random((1080, 1920)) < 0.6).astype(np.uint8) for _ in range(4)]
    f, times = confirm(frames), []
    for i in range(calls):
        t0 = time.perf_counter()
        f(masks[i % 4])
        times.append(1000 * (time.perf_counter() - t0))
    return round(float(np.median(times)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="benchmarks/models/camvid.pt")
    parser.add_argument("--root", default="../shared/data/camvid")
    parser.add_argument("--split", default="val")
    parser.add_argument("--demo", type=int, default=0, help="frames of the demo drive")
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    if args.demo:
        preds, labels = segment_demo(args.model, args.demo)
        data = f"demo drive, {args.demo} frames"
    else:
        preds, labels = segment_camvid(args.model, args.root, args.split)
        data = f"CamVid {args.split}, {len(preds)} frames in name order"
    filters = {"none": confirm(1), **{f"confirm {n}": confirm(n) for n in (2, 3, 4, 6)},
               **{f"vote of {k}": vote(k) for k in (3, 5)},
               **{f"erode {n} px": erode(n) for n in (1, 2, 4)}}
    rows = {name: score([f(p) for p in preds], labels) for name, f in filters.items()}
    result = {"model": args.model, "data": data, "filters": rows,
              "cost_ms_1080p": {3: cost_ms(3)}, "command": " ".join(sys.argv)}
    print(json.dumps(result, indent=1))
    if args.name:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
        (RESULTS / f"{args.name}.md").write_text(markdown(result))


def markdown(result: dict) -> str:
    """The result as a table."""
    keys = ["iou", "precision", "recall", "false_drivable", "missed_drivable", "flicker"]
    lines = [f"# Temporal filter of the drivable area: {result['data']}", "",
             f"Model `{result['model']}`. Command: `{result['command']}`", "",
             "| filter | " + " | ".join(k.replace("_", " ") + " %" for k in keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for name, row in result["filters"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.2f}" for k in keys) + " |")
    cost = result["cost_ms_1080p"]
    lines += ["", f"Cost of confirm 3 on a 1080p mask: {cost[3]} ms per frame.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
