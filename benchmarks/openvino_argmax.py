"""What the argmax at the end of an OpenVINO engine costs: four tails of one graph, timed
taking turns on one machine.

    python benchmarks/openvino_argmax.py [--checkpoint benchmarks/models/camvid.pt] \
        [--size 512x1024] [--precision bf16] [--rounds 6] [--per-round 8]

The checkpoint is converted to OpenVINO once, then compiled four times (LATENCY hint, 2
threads by default): logits out (N, C, H, W) float32; the node's stable TopK over C to a
(N, H, W) u8 class map (rtseg.backends.openvino_backend.with_argmax); a plain TopK; and a
TopK over the logits transposed to channels-last. Prints each tail's median latency and
whether each argmax gives the host argmax of the engine's own logits on every pixel.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def tails(model) -> dict:
    """Name -> an ov.Model: the converted `model` with one of the four tails."""
    import openvino as ov
    from openvino import opset11 as ops

    from rtseg.backends.openvino_backend import with_argmax

    def classes(index, axis: int):
        squeezed = ops.squeeze(index, np.array([axis], np.int64))
        return ov.Model([ops.result(ops.convert(squeezed, ov.Type.u8))],
                        model.get_parameters(), "tail")

    logits = model.get_results()[0].input_value(0)
    plain = ops.topk(logits, np.int64(1), 1, "max", "value", ov.Type.i32).output(1)
    nhwc = ops.transpose(logits, np.array([0, 2, 3, 1], np.int64))
    last = ops.topk(nhwc, np.int64(1), 3, "max", "value", ov.Type.i32, stable=True).output(1)
    return {"logits": model, "stable TopK (the node's)": with_argmax(model.clone()),
            "plain TopK": classes(plain, 1), "TopK over NHWC": classes(last, 3)}


def main() -> None:
    import openvino as ov

    from rtseg.checkpoint import load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="benchmarks/models/camvid.pt")
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--precision", choices=("bf16", "f32"), default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=8)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    net = load_checkpoint(args.checkpoint).build("cpu")  # (N, 3, H, W) -> logits (N, C, H, W)
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": args.precision,
              "INFERENCE_NUM_THREADS": args.threads}
    core = ov.Core()
    requests = {name: core.compile_model(m, "CPU", config).create_infer_request()
                for name, m in tails(ov.convert_model(net, example_input=x)).items()}
    feed = {0: x.numpy()}
    outputs = {name: r.infer(feed)[0].copy() for name, r in requests.items()}
    host = outputs.pop("logits").argmax(1).astype(np.uint8)
    times = {name: [] for name in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            for _ in range(args.per_round):
                start = time.perf_counter()
                request.infer(feed)
                times[name].append(time.perf_counter() - start)
    print(f"{args.checkpoint} at {h}x{w}, OpenVINO {args.precision}, {args.threads} threads, "
          f"median of {args.rounds * args.per_round}:")
    for name, t in times.items():
        same = f", {100 * (outputs[name] == host).mean():.3f} % = host argmax" \
            if name in outputs else ""
        print(f"  {name:26s} {1000 * np.median(t):6.1f} ms{same}")


if __name__ == "__main__":
    main()
