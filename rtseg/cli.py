"""Command line: parse flags -> a frozen config -> one call into the package. No logic here.

This module holds the group and the model commands (models, train, eval, predict, adjust,
compile, run, bench); the tools around a running node are in rtseg.cli_tools.

Heavy modules (torch, OpenCV, ONNX Runtime) are imported inside the commands that use them,
so `rtseg --help` and `rtseg echo` start fast.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from rtseg import __version__
from rtseg.cli_support import (
    EAGER_DEFAULT_HELP,
    Group,
    drivable_option,
    engine_options,
    host_pipeline_options,
    live_sources,
    stoppable,
)
from rtseg.cli_tools import TOOLS
from rtseg.config import (
    COMPILE_FORMATS,
    DEFAULT_ENDPOINT,
    FLIPS,
    PRECISIONS,
    ROTATIONS,
)
from rtseg.errors import RtsegError


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rtseg")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """rtseg: real-time road segmentation, from checkpoint to masks on a ZeroMQ socket."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    ours = logging.getLogger("rtseg")  # our INFO lines; other libraries' only from WARNING
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)
    ours.propagate = False
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


@main.command()
@click.option("--classes", default=7, show_default=True, help="Output classes for the count.")
def models(classes: int) -> None:
    """List the model names with their parameter counts."""
    from rtseg.models import describe_models

    click.echo(describe_models(classes))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def doctor(as_json: bool) -> None:
    """Check what this machine gives rtseg: torch and CUDA, the CPU's extensions, each
    engine runtime and what --format auto picks, OpenCV's video backends and the cameras,
    ZeroMQ (CURVE, ipc) and the tools' packages. Exit 1 when something every run needs
    is broken."""
    from rtseg import doctor as report

    checks = report.run_checks()
    click.echo(json.dumps(report.as_json(checks)) if as_json else report.format_report(checks))
    if any(c.status == "error" for c in checks):
        sys.exit(1)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--steps", type=int, help="Override [train] steps.")
@click.option("--batch-size", type=int, help="Override [train] batch_size.")
@click.option("--device", help="Override [train] device: auto, cpu, cuda[:N].")
@click.option("--out", help="Override [output] path of the best checkpoint.")
@click.option("--epochs", type=int, help="Override [train] epochs.")
@click.option("--workers", type=int, help="Override [train] workers (loader processes).")
@click.option("--resume", is_flag=True, help="Continue from the run's last.pt.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@stoppable("train", fast=False, torch=True)  # DataLoader workers end with the interpreter
def train(recipe, steps, batch_size, device, out, epochs, workers, resume, quiet) -> None:
    """Train a model from a TOML RECIPE (see train/README.md); keeps the best by val mIoU.

    Under `torchrun --nproc_per_node N -m rtseg train RECIPE` it runs data-parallel.
    """
    from rtseg.config import load_train_config
    from rtseg.training.loop import train as run_training

    cfg = load_train_config(recipe, {"train.steps": steps, "train.batch_size": batch_size,
                                     "train.device": device, "output.path": out,
                                     "train.epochs": epochs, "train.workers": workers})
    result = run_training(cfg, progress=not quiet, resume=resume)
    if result.main:
        click.echo(json.dumps({"checkpoint": result.checkpoint, "best_step": result.best_step,
                               "steps": result.steps, "stopped_early": result.stopped_early,
                               "seconds": round(result.seconds, 1),
                               "metrics": result.metrics}))


@main.command(name="eval")
@click.argument("checkpoint")
@click.option("--data", "kind", default="synthetic", show_default=True,
              help="Data set kind: synthetic, folder, coco, cityscapes, voc, camvid.")
@click.option("--root", default="", help="The data set's folder (all kinds but synthetic).")
@click.option("--split", default="val", show_default=True, help="train, val or test.")
@click.option("--count", default=64, show_default=True, help="Scenes to generate (synthetic).")
@click.option("--seed", default=12345, show_default=True,
              help="Seed of generated scenes (training used 0), or of a ratio split.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@engine_options("torch", EAGER_DEFAULT_HELP)
@drivable_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def eval_(checkpoint, kind, root, split, count, seed, device, engine, engine_cache, calib,
          precision, drivable, as_json) -> None:
    """Score CHECKPOINT (a path, or `demo`): per-class IoU, mIoU, accuracies, drivable IoU."""
    from rtseg.config import DataConfig
    from rtseg.export.cache import engine_model
    from rtseg.predict import evaluate_model
    from rtseg.training.evaluate import format_metrics

    cfg = DataConfig(kind=kind, root=root, val_size=count, train_size=count, seed=seed)
    model = engine_model(checkpoint, engine, device, engine_cache, calib, precision)
    result = evaluate_model(model, cfg, split=split, device=device, progress=not as_json,
                            drivable=drivable)
    click.echo(json.dumps(result) if as_json else format_metrics(result))


@main.command()
@click.argument("checkpoint")
@click.option("--source", required=True,
              help="Folder of images (png, jpg, ...), or a video file or recording (FILE.mcap, "
                   "rosbag2 folder, [#TOPIC]): then a training folder of its frames.")
@click.option("--out", required=True,
              help="Folder: OUT/STEM.png masks and OUT/overlay/; from a video or recording "
                   "OUT/images/, OUT/masks/, OUT/overlay/ and OUT/data.toml.")
@click.option("--every", default=1, show_default=True,
              help="Video or recording: every N-th frame (neighbours are near copies).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@click.option("--camera", default=None,
              help="Camera file (TOML, see launch/cameras/demo.toml): also each frame's grid "
                   "on the ground, OUT/grid/STEM.pgm + STEM.yaml (a map ROS's map_server "
                   "loads) and STEM_above.png.")
@engine_options("torch", EAGER_DEFAULT_HELP)
def predict(checkpoint, source, out, every, device, camera, engine, engine_cache, calib,
            precision) -> None:
    """Write a class-index mask (8-bit PNG, image size) and a colour overlay per image."""
    from rtseg.export.cache import engine_model
    from rtseg.predict import predict_source

    model = engine_model(checkpoint, engine, device, engine_cache, calib, precision)
    click.echo(predict_source(model, source, out, every=every, device=device,
                              camera=camera), err=True)


@main.command()
@click.argument("checkpoint")
@click.option("--out", required=True, help="Path of the adjusted checkpoint.")
@click.option("--tau", default=0.0, show_default=True,
              help="Logit adjustment: subtract tau * log(class weight) from each class's "
                   "logit (the recipe's class_weights), folded into the last layer's bias.")
@click.option("--input-size", help="New network input size HxW (multiples of 32) for "
                                   "compile, run and eval [default: unchanged].")
@click.option("--drop", multiple=True, help="Remove a decoder correction of a fine LR-ASPP "
              "(refine, refine2, refine1 or context; repeatable): every other weight stays.")
@click.option("--upsample-once", is_flag=True, help="A fine LR-ASPP with refine2: sum its "
              "stride-2 correction before one full-resolution upsampling (a faster engine, "
              "a slightly different function: score it again).")
@drivable_option
def adjust(checkpoint, out, tau, input_size, drop, upsample_once, drivable) -> None:
    """Write CHECKPOINT to --out with a logit adjustment, a new input size, a decoder
    correction dropped and/or its logits upsampled once (no training).

    Choose tau on the training split (benchmarks/camvid_headroom.py --split train), not on
    the frames you report.
    """
    from rtseg.training.adjust import adjust_checkpoint

    size = None
    if input_size:
        try:
            size = tuple(int(v) for v in input_size.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2:
            raise RtsegError(f"--input-size {input_size!r}: expected HxW, e.g. 448x608")
    record = adjust_checkpoint(checkpoint, out, tau=tau, input_size=size, drop=drop,
                               upsample_once=upsample_once, drivable=drivable)
    click.echo(json.dumps(record))


@main.command(name="compile")
@click.argument("checkpoint")
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(COMPILE_FORMATS),
              help="auto: TensorRT with a GPU and TensorRT, else AOTInductor on CUDA, else "
                   "OpenVINO.")
@click.option("--precision", type=click.Choice(PRECISIONS),
              help="bf16, int8 (needs --calib), auto (bf16 where the CPU has it): OpenVINO "
                   "[default: fp16 on CUDA, auto for OpenVINO, fp32 otherwise]")
@click.option("--height", type=int, help="Input height [default: the checkpoint's].")
@click.option("--width", type=int, help="Input width [default: the checkpoint's].")
@click.option("--batch", default=1, show_default=True, help="Static batch size.")
@click.option("--dynamic", is_flag=True, help="Dynamic batch, height and width.")
@click.option("--out", default="engines", show_default=True, help="Output folder.")
@click.option("--name", help="Engine file stem [default: derived from checkpoint and options].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@click.option("--calib", help="Folder of real images for the parity gate and the int8 "
                              "calibration [default: demo scenes].")
@click.option("--calib-labels", help="Class-index PNGs of the --calib images (same stems): "
                                     "the gate also compares mIoU with eager's, and int8 "
                                     "keeps the layers that cost the most mIoU in float.")
@click.option("--frames", default=8, show_default=True, help="Frames in the parity gate.")
@click.option("--threshold", type=float,
              help="Minimum mask agreement (%) with FP32 eager; below it compile fails "
                   "[default: 99, bf16 99.5, int8 97; int8 with --calib-labels: mIoU within 1 "
                   "point of eager instead].")
def compile_(checkpoint, fmt, precision, height, width, batch, dynamic, out, name, device,
             calib, calib_labels, frames, threshold) -> None:
    """Compile CHECKPOINT (a path, or `demo`) into an engine + manifest, gated by parity."""
    from rtseg.config import CompileConfig
    from rtseg.export import compile_checkpoint

    cfg = CompileConfig(checkpoint=checkpoint, format=fmt, precision=precision, height=height,
                        width=width, batch=batch, dynamic=dynamic, out=out, name=name,
                        device=device, calib=calib, frames=frames, threshold=threshold,
                        calib_labels=calib_labels)
    result = compile_checkpoint(cfg)
    click.echo(str(result.path))


@main.command()
@click.option("--source", multiple=True, default=["demo"], show_default=True,
              help="camera0 / 0 (camera index), a video file, rtsp:// or http(s):// URL, a folder "
                   "or glob of images, an MCAP recording (FILE.mcap or a rosbag2 folder, "
                   "#TOPIC: its sensor_msgs Image / CompressedImage topic), or demo (generated "
                   "road scenes). Repeat it for several cameras: their newest frames share one "
                   "engine call.")
@click.option("--model", help="Checkpoint path (or demo, the bundled one), engine manifest "
                              "NAME.json or engine file [default: demo].")
@click.option("--name", multiple=True,
              help="Topic prefix NAME (topics NAME/drivable, NAME/classes), one per --source in "
                   "the same order [default: derived from each source, demo for the demo].")
@click.option("--bind", default=DEFAULT_ENDPOINT, show_default=True,
              help="ZeroMQ endpoint to publish on (tcp://HOST:PORT or ipc://PATH).")
@click.option("--allow-remote", is_flag=True, help="Allow binding a non-loopback address.")
@click.option("--hwm", default=4, show_default=True, type=click.IntRange(min=1),
              help="Frames queued per subscriber (a frame: every source's masks, image and "
                   "status); beyond them the node drops new ones for it (small: live masks, "
                   "never stale; large: a slow consumer misses nothing).")
@click.option("--encoding", type=click.Choice(["mono8", "bits", "png"]), default="mono8",
              show_default=True, help="Mask encoding; bits applies to drivable (classes: mono8).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@click.option("--max-frames", type=int, help="Stop after publishing this many frames.")
@click.option("--fps", type=float, help="Cap the output rate (frames per second).")
@click.option("--pace", is_flag=True,
              help="Files/folders: replay at the file's frame rate, dropping what cannot keep up.")
@click.option("--loop", is_flag=True, help="Files/folders: start again at the end.")
@click.option("--stamps", type=click.Choice(["read", "recorded"]), default="read",
              show_default=True,
              help="Masks' stamp_ns: the wall clock when the frame was read, or (recordings) "
                   "the frame's recorded capture time, to line up with the recording's other "
                   "sensors; latency counts from the read either way.")
@click.option("--source-fps", default=30.0, show_default=True,
              help="Frame rate of the demo source and of paced image folders.")
@click.option("--demo-size", default="360x640", show_default=True, help="Demo frame size HxW.")
@click.option("--status-every", default=5.0, show_default=True,
              help="Seconds between status lines (0: none).")
@engine_options("torch", EAGER_DEFAULT_HELP)
@host_pipeline_options
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="CUDA: replay one captured graph per batch for static-shape engines.")
@click.option("--image-topic", is_flag=True,
              help="Also publish NAME/image: the frame as JPEG (for viewers and recorders).")
@click.option("--image-fps", default=10.0, show_default=True,
              help="Most images per second and source on NAME/image.")
@click.option("--image-width", default=640, show_default=True,
              help="Width of the JPEGs (wider frames are downscaled).")
@click.option("--curve-secret", type=click.Path(dir_okay=False),
              help="Encrypt and authenticate with ZeroMQ CURVE: the node's key pair file "
                   "(NAME.key_secret from `rtseg keys`).")
@click.option("--curve-clients", type=click.Path(file_okay=False),
              help="With --curve-secret: admit only the client public keys (*.key) in this "
                   "folder.")
@click.option("--capture-size", help="Cameras: ask for frames of this size, HxW (e.g. "
              "720x1280) [default: the camera's].")
@click.option("--capture-fps", type=float, help="Cameras: ask for this frame rate.")
@click.option("--capture-fourcc", help="Cameras: ask for this pixel format, e.g. MJPG (USB 2 "
              "cameras send large frames at full rate only compressed) or YUYV.")
@click.option("--stream-option", "stream_options", multiple=True, metavar="NAME=VALUE",
              help="Stream URLs: an FFmpeg option for opening them, repeatable, e.g. "
                   "rtsp_transport=tcp, fflags=nobuffer, flags=low_delay, user_agent=...")
@click.option("--metrics-port", type=int, help="Serve GET /metrics for Prometheus on this "
              "port (0: a free one, logged): frames published and dropped, fps, state per "
              "source, latency and stage quantiles.")
@click.option("--metrics-bind", default="127.0.0.1", show_default=True,
              help="The address of --metrics-port (another than loopback needs "
                   "--allow-remote).")
@drivable_option
@click.option("--crop", multiple=True, metavar="X,Y,W,H",
              help="Keep only this box of the frames (after --rotate / --flip), in pixels: "
                   "left, top, width, height; a W or H of 0 reaches the edge (0,0,0,880: the "
                   "top 880 rows, a car's bonnet cut off). Once for every source, or once "
                   "per --source in order. Masks and NAME/image are of the cropped frame.")
@click.option("--flip", multiple=True, type=click.Choice(FLIPS),
              help="Mirror the frames after --rotate: horizontal (left-right: a reversing "
                   "camera's mirror image) or vertical; once for every source, or once per "
                   "--source in order.")
@click.option("--rotate", multiple=True, type=click.Choice([str(d) for d in ROTATIONS]),
              help="Turn the frames clockwise by this many degrees before segmenting (a "
                   "camera mounted upside down: 180): once for every source, or once per "
                   "--source in order. Masks and NAME/image are of the turned frame.")
@stoppable("run", where="during start-up", torch=True, shared_cores=live_sources)
def run(source, model, name, bind, allow_remote, hwm, encoding, device, max_frames, fps, pace,
        loop, stamps, source_fps, demo_size, status_every, engine, engine_cache, calib,
        precision, overlap, mask_size, cuda_graphs, image_topic, image_fps, image_width,
        curve_secret, curve_clients, capture_size, capture_fps, capture_fourcc, stream_options,
        metrics_port, metrics_bind, drivable, crop, flip, rotate) -> None:
    """Run the streaming node: read frames, segment them, publish masks over ZeroMQ.

    Topics per source NAME: NAME/drivable, NAME/classes, NAME/status (a heartbeat every
    second) and, with --image-topic, NAME/image. Ctrl-C or SIGTERM stops it cleanly, at
    any moment, with exit status 0.
    """
    from rtseg.config import RunConfig, parse_size
    from rtseg.stream.node import run_node

    cfg = RunConfig(source=tuple(source), model=model, name=tuple(name) or None, bind=bind,
                    allow_remote=allow_remote, hwm=hwm, encoding=encoding, device=device,
                    max_frames=max_frames, fps=fps, pace=pace, loop=loop, stamps=stamps,
                    source_fps=source_fps, demo_size=parse_size(demo_size),
                    status_every=status_every, engine=engine,
                    engine_cache=engine_cache, calib=calib, precision=precision,
                    overlap=overlap, mask_size=mask_size, cuda_graphs=cuda_graphs,
                    image_topic=image_topic,
                    image_fps=image_fps, image_width=image_width,
                    curve_secret=curve_secret, curve_clients=curve_clients,
                    rotate=tuple(int(degrees) for degrees in rotate), flip=tuple(flip),
                    crop=tuple(crop),
                    capture_size=parse_size(capture_size) if capture_size else None,
                    capture_fps=capture_fps, capture_fourcc=capture_fourcc,
                    stream_options=tuple(stream_options), metrics_port=metrics_port,
                    metrics_bind=metrics_bind, drivable=drivable)
    report = run_node(cfg)
    click.echo(report.summary(), err=True)


@main.command()
@click.option("--model", default="demo", show_default=True,
              help="Checkpoint, demo, engine manifest NAME.json or engine file.")
@engine_options("auto", "How a checkpoint runs: compiled once into --engine-cache, or torch "
                         "(eager).")
@click.option("--source", multiple=True,
              help="Real sources for the pipeline phase (repeat: one per camera) "
                   "[default: generated frames in memory].")
@click.option("--batch", default=1, show_default=True,
              help="Cameras batched per engine call (in-memory frames).")
@click.option("--height", default=512, show_default=True, help="Network input height.")
@click.option("--width", default=1024, show_default=True, help="Network input width.")
@click.option("--frame-size", help="In-memory frame size HxW [default: 1080x1920 on CUDA, the "
                                   "network size on the CPU].")
@click.option("--seconds", default=10.0, show_default=True, help="Measured seconds per phase.")
@click.option("--warmup", default=2.0, show_default=True, help="Warm-up seconds per phase.")
@click.option("--rounds", default=3, show_default=True,
              help="Engine-only and pipeline alternate this many times; --seconds is split.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@click.option("--data", help="Also score the engine on this data set kind (e.g. camvid).")
@click.option("--root", default="", help="The --data set's folder.")
@click.option("--checkpoint", help="Eager checkpoint of the baseline when --model is an engine.")
@click.option("--no-baseline", is_flag=True, help="Skip the naive-loop phase.")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="CUDA: replay one captured graph per call in the engine phase and per "
                   "batch in the pipeline phase (graph-capturable engines).")
@host_pipeline_options
@click.option("--json", "as_json", is_flag=True,
              help="Also print the result as one JSON object on the last line of stdout.")
@stoppable("bench", torch=True, shared_cores=live_sources)
def bench(model, source, batch, height, width, frame_size, seconds, warmup, rounds,
          device, data, root, checkpoint, no_baseline, cuda_graphs, engine, engine_cache, calib,
          precision, overlap, mask_size, as_json) -> None:
    """Measure FPS and latency: engine only, the node's pipeline, and the naive loop."""
    from rtseg.bench import format_table, run_bench
    from rtseg.config import BenchConfig, parse_size

    cfg = BenchConfig(model=model, engine=engine, sources=tuple(source), batch=batch,
                      height=height, width=width,
                      frame_size=parse_size(frame_size) if frame_size else None,
                      seconds=seconds, warmup_s=warmup, rounds=rounds, device=device,
                      data=data, root=root,
                      engine_cache=engine_cache, calib=calib, precision=precision,
                      overlap=overlap, mask_size=mask_size, cuda_graphs=cuda_graphs,
                      baseline=not no_baseline,
                      checkpoint=checkpoint)
    result = run_bench(cfg)
    click.echo(format_table(result))
    if as_json:
        click.echo(json.dumps(result))


for _tool in TOOLS:
    main.add_command(_tool)
