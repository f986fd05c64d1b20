"""`rtseg bench`: engine-only, pipeline and naive-loop figures of one model, in one run.

- engine: the compiled engine (or eager model) on a ready input batch: latency p50/p99
  per call and FPS (frames per second = calls x batch / wall time).
- pipeline: the real node (feed threads, pipeline, publishing thread, PUB socket) on
  in-memory frames (or the given sources), with a real subscriber in another process:
  FPS and capture->publish latency p50/p99, and each stage's time.
- baseline: the naive loop this project started from: per frame, CPU preprocessing,
  eager FP32, blocking transfers, logits resized to the frame, publish; nothing overlaps.
The three alternate in `rounds` within one run, so drift of the machine's speed affects every
side of their ratios alike.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import torch

from rtseg.backends import ENGINE_SUFFIXES, Backend, load_backend
from rtseg.config import BenchConfig, RunConfig
from rtseg.device import pick_device
from rtseg.signals import StopRequested
from rtseg.stream.memory import MemorySource, memory_frames
from rtseg.stream.node import LoopSettings, node_report, serve, stop_on_signals, wire
from rtseg.stream.pipeline import Pipeline
from rtseg.stream.publisher import FrameMeta, MaskPublisher
from rtseg.stream.publishing import queue_messages
from rtseg.stream.sources import SourceSpec, open_source
from rtseg.stream.stats import stage_summary, summarise

log = logging.getLogger("rtseg.bench")

CPU_TARGETS = {"engine_vs_baseline": 3.0, "pipeline_vs_engine": 0.9}
OPENVINO_TARGETS = {"engine_vs_baseline": 5.5, "pipeline_vs_engine": 0.9}  # issue 11
GPU_TARGETS = {"engine_fps": 1000.0, "pipeline_p50_ms": 2.0, "pipeline_p99_ms": 4.0,
               "pipeline_vs_engine": 0.9, "pipeline_vs_baseline": 10.0}


def run_bench(cfg: BenchConfig) -> dict:
    """Every phase of the benchmark; returns the JSON-ready result (see module doc)."""
    dev = pick_device(cfg.device)
    size = (cfg.height, cfg.width)
    batch = len(cfg.sources) or cfg.batch
    model = engine_model(cfg, dev, batch)
    frame_size = cfg.frame_size or ((1080, 1920) if dev.type == "cuda" else size)
    frames = memory_frames(frame_size, pinned=dev.type == "cuda")
    checkpoint = baseline_checkpoint(cfg) if cfg.baseline else None
    naive = None
    try:
        with open_backend(model, dev, size) as backend:
            spec = backend.spec  # an engine file's own input size wins over --height/--width
            naive = NaiveLoop(checkpoint, dev, spec.input_size, frames) if checkpoint else None
            phases = interleaved(cfg, backend, dev, frames, batch, naive)
    finally:
        if naive is not None:
            naive.close()
    result = {"model": spec.name, "engine_file": model, "device": describe_device(dev),
              "batch": batch, "input_size": list(spec.input_size),
              "frame_size": None if cfg.sources else list(frame_size),
              "sources": list(cfg.sources) or ["memory"] * batch, **phases}
    result["ratios"] = ratios(result)
    result["targets"] = targets(result, dev)
    if cfg.data:
        result["accuracy"] = bench_accuracy(cfg, model, dev, size)
    return result


def engine_model(cfg: BenchConfig, dev: torch.device, batch: int) -> str:
    """The model to load: an engine as given, the checkpoint (engine torch), or a cached
    engine compiled once for this size and batch."""
    from rtseg.export.cache import resolve_model

    return resolve_model(cfg.model, cfg.engine, str(dev), cfg.engine_cache, batch=batch,
                         input_size=(cfg.height, cfg.width), calib=cfg.calib,
                         precision=cfg.precision)


def open_backend(model: str, dev: torch.device, size: tuple[int, int]) -> Backend:
    """load_backend; an eager checkpoint takes `size` inputs (engines have their own)."""
    return load_backend(model, str(dev), input_size=tuple(size))


def bench_engine(backend: Backend, batch: int, seconds: float, warmup_s: float,
                 graphs: bool = False, report: dict | None = None
                 ) -> tuple[list[float], float]:
    """Calls on one ready input batch for `seconds`: (per-call ms, wall s). The engine is
    called as the node calls it (`engine_input`, `engine_output`): (batch, H, W, 3) uint8
    frames to a fused-preprocess engine, else a (batch, 3, H, W) normalised batch; class
    maps from a fused-argmax engine, else logits; on CUDA with `graphs`, a
    graph-capturable engine as one CUDA graph replay, as the node runs it
    (`report["cuda_graph"]` says what became of it)."""
    h, w = backend.spec.input_size
    cuda = backend.device.type == "cuda"
    if engine_input(backend, cuda) == "frames":  # uint8 BGR frames, normalised in the engine
        x = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
        run = backend.frames_to_classes
    else:
        x = torch.randn(batch, 3, h, w).to(backend.device, backend.dtype)
        run = backend.classes if engine_output(backend, cuda) == "classes" else backend

    def call():
        return run(x)

    if cuda and graphs and type(backend).graph_capturable:
        from rtseg.stream.cuda_pipeline import capture_graph

        graph, state = capture_graph(call, torch.cuda.current_stream())
        call = graph.replay if graph is not None else call
        if report is not None:
            report["cuda_graph"] = state
    _repeat(call, warmup_s, minimum=3, sync=cuda)
    times = (_timed_cuda if cuda else _timed_cpu)(call, seconds)
    return times[:-1], times[-1]


def engine_output(backend: Backend, cuda: bool) -> str:
    """What the node asks the engine for: "classes" from a fused-argmax engine on the host
    path (the CPU node's upsample mode), else "logits"."""
    return "classes" if backend.fused_argmax and not cuda else "logits"


def engine_input(backend: Backend, cuda: bool) -> str:
    """What the node gives the engine: "frames" (uint8 BGR at the input size) to a
    fused-preprocess engine on the host path, else a "normalised" float batch."""
    fused = engine_output(backend, cuda) == "classes" and backend.fused_preprocess
    return "frames" if fused else "normalised"


def summarise_calls(*runs: tuple[list[float], float], batch: int = 1) -> dict:
    """FPS (calls x batch / wall time) and latency percentiles over timed runs."""
    times = [t for run in runs for t in run[0]]
    wall = sum(run[1] for run in runs)
    return {"fps": len(times) * batch / wall, "calls": len(times), **_percentiles(times)}


def interleaved(cfg: BenchConfig, backend: Backend, dev: torch.device, frames: list,
                batch: int, naive: NaiveLoop | None) -> dict:
    """Engine-only, pipeline and naive-loop figures, measured in alternating rounds so that
    drift of the machine's speed during the run affects every side of their ratios alike."""
    runs: dict[str, list] = {"engine": [], "pipeline": [], "baseline": []}
    share, report = cfg.seconds / cfg.rounds, {}
    for round_ in range(cfg.rounds):
        warmup = cfg.warmup_s if round_ == 0 else 0.0
        runs["engine"].append(bench_engine(backend, batch, share, warmup, cfg.cuda_graphs,
                                           report))
        runs["pipeline"].append(bench_pipeline(cfg, backend, dev, frames, batch, share))
        if naive is not None:
            runs["baseline"].append(naive.run(share, warmup))
    out = {"engine": {**summarise_calls(*runs["engine"], batch=batch),
                      "input": engine_input(backend, dev.type == "cuda"),
                      "output": engine_output(backend, dev.type == "cuda"), **report},
           "pipeline": summarise_pipeline(runs["pipeline"])}
    if naive is not None:
        out["baseline"] = summarise_calls(*runs["baseline"])
    return out


def bench_pipeline(cfg: BenchConfig, backend: Backend, dev: torch.device, frames: list,
                   batch: int, seconds: float) -> dict:
    """One round of the node on in-memory frames (one source per batch slot) or on
    cfg.sources, measured for `seconds` after cfg.warmup_s: frames, seconds, raw samples."""
    if cfg.sources:
        sources = [open_source(SourceSpec(spec=s, loop=True)) for s in cfg.sources]
    else:
        sources = [MemorySource(frames, name=f"cam{i}") for i in range(batch)]
    stop, holder, consumer = threading.Event(), {}, None

    def on_stats(stats) -> None:
        holder["stats"] = stats
        threading.Thread(target=_measure_window, args=(stats, stop, cfg.warmup_s, seconds),
                         daemon=True).start()

    try:
        hwm = queue_messages(RunConfig.hwm, batch)  # the node's default, in messages
        with (MaskPublisher("tcp://127.0.0.1:*", hwm=hwm) as publisher,
              wire(sources, backend, publisher, cuda_graphs=cfg.cuda_graphs,
                   overlap=cfg.overlap, mask_size=cfg.mask_size) as wiring,
              stop_on_signals(stop) as signalled):
            consumer = _start_consumer(publisher.endpoint, list(wiring.names))
            stats = serve(wiring, LoopSettings(status_every=0), stop, on_stats)
        report = node_report(wiring, stats, signalled)
    finally:
        rates = _stop_consumer(consumer)
    if report.stopped_by:  # the node stopped in order; the bench ends here too
        raise StopRequested(signal.Signals[report.stopped_by], "in the pipeline phase")
    return {"frames": report.published, "seconds": report.seconds,
            "dropped": report.dropped, "samples": holder["stats"].samples(),
            "consumer_rates_hz": rates, "overlap": cfg.overlap, "mask_size": cfg.mask_size,
            "cuda_graph": getattr(wiring.pipeline, "graph_state", None)}


def summarise_pipeline(runs: list[dict]) -> dict:
    """FPS (frames / measured seconds) and percentiles of latency and stages over rounds."""
    frames = sum(r["frames"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    merged: dict[str, list[float]] = {}
    for run in runs:
        for key, values in run["samples"].items():
            merged.setdefault(key, []).extend(values)
    latency = summarise(merged["latency"])
    return {"fps": frames / seconds if seconds else 0.0, "frames": frames, "seconds": seconds,
            "p50_ms": latency["p50"], "p99_ms": latency["p99"],
            "dropped": sum(r["dropped"] for r in runs),
            "stages_ms": stage_summary(merged), "overlap": runs[-1]["overlap"],
            "mask_size": runs[-1]["mask_size"], "consumer_rates_hz": runs[-1]["consumer_rates_hz"],
            "cuda_graph": runs[-1].get("cuda_graph"),
            "rounds": [{k: r.get(k) for k in ("frames", "seconds", "dropped", "cuda_graph")}
                       for r in runs]}


class NaiveLoop:
    """The naive loop: per frame CPU pre, eager FP32, blocking copies, bilinear logits at
    frame size, publish. `run(seconds)` -> (per-frame ms, wall s)."""

    def __init__(self, checkpoint: str, dev: torch.device, size: tuple[int, int],
                 frames: list):
        self.backend = open_backend(checkpoint, dev, size)
        self.publisher = MaskPublisher("tcp://127.0.0.1:*")
        self.pipeline = Pipeline(self.backend, upsample="logits")
        self.frames, self.count = frames, 0

    def one(self) -> None:
        """One frame in, both masks published."""
        image = np.array(self.frames[self.count % len(self.frames)])  # pageable, as decoded
        self.count += 1
        masks = self.pipeline(image)
        meta = FrameMeta(seq=self.count, stamp_ns=time.time_ns(), frame_id="memory",
                         model="baseline")
        self.publisher.publish_frame("baseline", masks.drivable, masks.classes, meta,
                                     class_names=self.pipeline.spec.classes)

    def run(self, seconds: float, warmup_s: float) -> tuple[list[float], float]:
        _repeat(self.one, warmup_s, minimum=2, sync=False)
        times = _timed_cpu(self.one, seconds)
        return times[:-1], times[-1]

    def close(self) -> None:
        self.publisher.close()
        self.backend.close()


def bench_accuracy(cfg: BenchConfig, model: str, dev: torch.device, size) -> dict:
    """Scores of the benchmarked engine on cfg.data, through the node's post-processing."""
    from rtseg.config import DataConfig
    from rtseg.predict import evaluate_model

    data = DataConfig(kind=cfg.data, root=cfg.root, height=size[0], width=size[1])
    upsample = "logits" if dev.type == "cuda" else "classes"
    result = evaluate_model(model, data, split="val", device=str(dev), upsample=upsample)
    keep = ("miou", "pixel_accuracy", "mean_accuracy", "drivable_iou", "images", "split")
    return {k: result[k] for k in keep if k in result}


def ratios(result: dict) -> dict:
    """engine/baseline, pipeline/engine and pipeline/baseline FPS ratios."""
    fps = {k: result[k]["fps"] for k in ("engine", "pipeline", "baseline") if k in result}
    out = {"pipeline_vs_engine": fps["pipeline"] / fps["engine"]}
    if "baseline" in fps:
        out["engine_vs_baseline"] = fps["engine"] / fps["baseline"]
        out["pipeline_vs_baseline"] = fps["pipeline"] / fps["baseline"]
    return out


def targets(result: dict, dev: torch.device) -> dict:
    """Each target of this device kind (an OpenVINO engine's own on the CPU):
    {name: {"target", "value", "met"}}."""
    values = {**result["ratios"], "engine_fps": result["engine"]["fps"],
              "pipeline_p50_ms": result["pipeline"]["p50_ms"],
              "pipeline_p99_ms": result["pipeline"]["p99_ms"]}
    wanted = GPU_TARGETS if dev.type == "cuda" else CPU_TARGETS
    if dev.type == "cpu" and "/openvino-" in result.get("model", ""):
        wanted = OPENVINO_TARGETS
    out = {}
    for name, target in wanted.items():
        if name in values:
            value = values[name]
            met = value <= target if name.endswith("_ms") else value >= target
            out[name] = {"target": target, "value": value, "met": bool(met)}
    return out


def describe_device(dev: torch.device) -> str:
    """`cpu (N threads)` or the GPU's name."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({torch.get_num_threads()} threads)"


def baseline_checkpoint(cfg: BenchConfig) -> str | None:
    """The eager checkpoint of the naive loop: --checkpoint, else the model when it is one."""
    if cfg.checkpoint:
        return cfg.checkpoint
    if cfg.model.endswith((".json", *ENGINE_SUFFIXES)):
        log.warning("--model is an engine: no naive-loop baseline without --checkpoint")
        return None
    return cfg.model


def _measure_window(stats, stop: threading.Event, warmup_s: float, seconds: float) -> None:
    """Restart the node's counters after the warm-up, stop the node `seconds` later."""
    if not stop.wait(warmup_s):
        stats.restart()
        stop.wait(seconds)
    stop.set()


def _start_consumer(endpoint: str, names: list[str]) -> subprocess.Popen:
    """`rtseg echo --hz` on both topics of every source, in its own process."""
    topics = [f"{n}/{t}" for n in names for t in ("drivable", "classes")]
    return subprocess.Popen([sys.executable, "-m", "rtseg", "echo", endpoint, *topics, "--hz"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _stop_consumer(proc: subprocess.Popen | None) -> dict:
    """Stop the consumer; its last reported rate per topic (Hz)."""
    if proc is None:
        return {}
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    rates = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[1].startswith("rate=") and parts[1][5:-2] not in ("-", "0"):
            rates[parts[0]] = float(parts[1][5:-2])
    return rates


def _repeat(fn, seconds: float, minimum: int, sync: bool) -> None:
    """Warm-up: call `fn` at least `minimum` times and for `seconds`."""
    end, n = time.perf_counter() + seconds, 0
    while n < minimum or time.perf_counter() < end:
        fn()
        n += 1
    if sync:
        torch.cuda.synchronize()


def _timed_cpu(fn, seconds: float) -> list[float]:
    """Per-call ms for `seconds` (at least 3 calls), then the wall time in s appended."""
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return [*times, time.perf_counter() - start]


def _timed_cuda(fn, seconds: float) -> list[float]:
    """Back-to-back calls timed by CUDA events (no sync between calls), then wall s."""
    pairs, start = [], time.perf_counter()
    while len(pairs) < 3 or time.perf_counter() - start < seconds:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        pairs.append((begin, end))
        if len(pairs) % 64 == 0:
            end.synchronize()  # keeps the queue of launched work short
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return [b.elapsed_time(e) for b, e in pairs] + [wall]


def _percentiles(times_ms: list[float]) -> dict:
    return {f"{k}_ms": v for k, v in summarise(times_ms).items()}


def format_table(result: dict) -> str:
    """The result as a few aligned lines for people."""
    eng, pipe = result["engine"], result["pipeline"]
    lines = [f"rtseg bench: {result['model']} on {result['device']}, batch {result['batch']}, "
             f"input {_size(result['input_size'])}, frames "
             f"{_size(result['frame_size']) if result['frame_size'] else 'from sources'}",
             f"{'':<10}{'fps':>9}{'p50 ms':>9}{'p99 ms':>9}",
             f"{'engine':<10}{eng['fps']:>9.1f}{eng['p50_ms']:>9.2f}{eng['p99_ms']:>9.2f}"
             + (f"   (CUDA graph: {eng['cuda_graph']})" if eng.get("cuda_graph") else ""),
             f"{'pipeline':<10}{pipe['fps']:>9.1f}{pipe['p50_ms']:>9.2f}{pipe['p99_ms']:>9.2f}"]
    if "baseline" in result:
        base = result["baseline"]
        lines.append(f"{'baseline':<10}{base['fps']:>9.1f}{base['p50_ms']:>9.2f}"
                     f"{base['p99_ms']:>9.2f}")
    stages = "  ".join(f"{k} {v['mean']:.2f}" for k, v in pipe["stages_ms"].items())
    flags = f"--overlap {pipe.get('overlap', 'on')}, --mask-size {pipe.get('mask_size', 'frame')}"
    if pipe.get("cuda_graph"):
        flags += f", CUDA graph: {pipe['cuda_graph']}"
    lines.append(f"pipeline stages ({flags}), mean ms: {stages}")
    lines.append("ratios: " + "  ".join(f"{k} {v:.2f}x" for k, v in result["ratios"].items()))
    for name, t in result["targets"].items():
        lines.append(f"target {name}: {t['value']:.2f} vs {t['target']:g} "
                     f"{'met' if t['met'] else 'MISSED'}")
    if "accuracy" in result:
        acc = result["accuracy"]
        lines.append(f"accuracy on {acc.get('images')} {acc.get('split')} images: mIoU "
                     f"{100 * acc['miou']:.2f}, drivable IoU {100 * acc['drivable_iou']:.2f}")
    return "\n".join(lines)


def _size(hw) -> str:
    return f"{hw[0]}x{hw[1]}"
