"""Command line, the tools around a running node: echo, launch, view, foxglove, record,
serve, keys, info, play (registered on the `rtseg` group in rtseg.cli). Flags -> one call
into the package; no logic.
"""

from __future__ import annotations

import json

import click

from rtseg.cli_support import (
    EAGER_DEFAULT_HELP,
    check_rtseg_commands,
    drivable_option,
    engine_options,
    stoppable,
)
from rtseg.errors import RtsegError


def curve_client_options(fn):
    """--curve-server-key / --curve-secret: a consumer of a node run with --curve-secret."""
    fn = click.option("--curve-secret", type=click.Path(dir_okay=False),
                      help="This client's key pair file (NAME.key_secret), for a node that "
                           "admits listed clients only.")(fn)
    return click.option("--curve-server-key", type=click.Path(dir_okay=False),
                        help="The node's public key file (NAME.key), for a node run with "
                             "--curve-secret.")(fn)


def camera_option(adds: str):
    """--camera [NAME=]FILE (repeatable): a camera file of rtseg.ground; `adds` says what
    it adds to the command."""
    return click.option(
        "--camera", "cameras", multiple=True, metavar="[NAME=]FILE",
        help=f"A camera file (intrinsics, mount, grid; see launch/cameras/demo.toml): {adds} "
             "FILE alone: every camera; NAME=FILE: one (it wins over FILE). Repeatable.")


GRID_TOPIC = "also {} /NAME/grid, the drivable mask on the ground as nav_msgs/OccupancyGrid."


FUSE_HELP = ("Also /grid: the newest grids of the cameras with camera files (two or more, "
             "one [grid] in all) fused, each cell the highest value any camera gives it "
             "(occupied wins; unknown only where no camera sees it); and /scan, its free "
             "space as a laser scan all round the robot.")


def fuse_option(help_text: str = FUSE_HELP):
    """--fuse: the cameras' grids fused (rtseg.grid_fusion)."""
    return click.option("--fuse", is_flag=True, help=help_text)


@click.command()
@click.argument("endpoint")
@click.argument("topics", nargs=-1)
@click.option("--hz", is_flag=True, help="Print the message rate per topic instead.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (header fields, drivable fraction or pixels "
                   "per class; status; rates) for jq and scripts.")
@click.option("--count", type=int, help="Stop after this many messages.")
@click.option("--timeout", type=float,
              help="Stop when nothing arrives for this many seconds (without TOPICS: listen "
                   "this long, default 2).")
@curve_client_options
@stoppable("echo")
def echo(endpoint, topics, hz, as_json, count, timeout, curve_server_key,
         curve_secret) -> None:
    """Print one line per mask published on TOPICS at ENDPOINT (like `ros2 topic echo`).

    Without TOPICS: list the topics published there, what they carry and their rate (like
    `ros2 topic list -v`). Example: rtseg echo tcp://127.0.0.1:5555 demo/drivable demo/status
    """
    from rtseg.echo import echo as run_echo

    received = run_echo(endpoint, topics, hz=hz, as_json=as_json, count=count,
                        timeout_s=timeout,
                        curve_server_key=curve_server_key, curve_secret=curve_secret)
    if received == 0:
        raise RtsegError(f"no message arrived on {', '.join(topics)} at {endpoint}: is a node "
                         "running there (`rtseg run`), with this --name?")


@click.command(name="launch")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("arguments", nargs=-1, metavar="[NAME:=VALUE]...")
@click.option("--check", is_flag=True, help="Only read FILE and list its processes, with "
              "the launch arguments put in.")
@click.option("--show-args", "-s", is_flag=True, help="Only list FILE's launch arguments: "
              "description, choices, default (like `ros2 launch -s`).")
@click.option("--log-dir", metavar="DIR", envvar="RTSEG_LOG_DIR", help="Also write every "
              "line to DIR/<start time>-<pid>/launch.log and NAME.log per process (DIR/latest: "
              "the newest), as ~/.ros/log. [env: RTSEG_LOG_DIR]")
@stoppable("launch")
def launch_(file, arguments, check, show_args, log_dir) -> None:
    """Start the processes of a launch FILE.toml and supervise them, like `ros2 launch`:
    output prefixed [name], respawn, ready topics; Ctrl-C / SIGTERM stops them all
    (see launch/README.md). NAME:=VALUE sets a launch argument the file declares.
    Example: rtseg launch launch/demo.toml source:=camera0
    """
    from rtseg.launch import load_launch_file, run_launch, show_launch_args

    if show_args:
        click.echo(show_launch_args(file))
        return
    spec = load_launch_file(file, arguments)
    check_rtseg_commands(spec, click.get_current_context().find_root().command)
    click.echo(spec.describe() if check else run_launch(spec, log_dir=log_dir), err=not check)


@click.command()
@click.argument("endpoint")
@click.argument("names", nargs=-1)
@click.option("--port", default=8080, show_default=True, help="HTTP port of the page.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="HTTP address to listen on.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --bind.")
@camera_option("the drivable mask on the ground, seen from above, beside the overlay.")
@fuse_option("Also the cameras' grids fused into one (two or more camera files, one [grid] "
             "in all), from above, at /grid/overlay.mjpg: the surround view.")
@curve_client_options
@stoppable("view")
def view(endpoint, names, port, bind, allow_remote, cameras, fuse, curve_server_key,
         curve_secret) -> None:
    """Serve a live page of the cameras NAMES [default: demo] of the node at ENDPOINT.

    Open http://127.0.0.1:PORT/ for the overlays (run the node with --image-topic to see
    the camera frames under the masks); /NAME/overlay.mjpg streams one camera.
    """
    from rtseg.view import ViewConfig, run_view

    run_view(ViewConfig(endpoint=endpoint, names=tuple(names) or ("demo",), port=port,
                        bind=bind, allow_remote=allow_remote, cameras=tuple(cameras),
                        fuse=fuse, curve_server_key=curve_server_key,
                        curve_secret=curve_secret))


@click.command()
@click.argument("endpoint")
@click.argument("names", nargs=-1)
@click.option("--port", default=8765, show_default=True,
              help="WebSocket port (Foxglove's default: 8765).")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to listen on.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --bind.")
@click.option("--no-overlay", is_flag=True, help="Do not serve /NAME/overlay.")
@camera_option(GRID_TOPIC.format("serve"))
@fuse_option()
@curve_client_options
@stoppable("foxglove")
def foxglove(endpoint, names, port, bind, allow_remote, no_overlay, cameras, fuse,
             curve_server_key, curve_secret) -> None:
    """Serve the cameras NAMES [default: demo] of the node at ENDPOINT live to Foxglove.

    In Foxglove: Open connection, Foxglove WebSocket, ws://127.0.0.1:PORT. Topics and
    types are those of `rtseg record` (/NAME/classes, /NAME/drivable as
    sensor_msgs/msg/Image; /NAME/image, /NAME/overlay as CompressedImage; /NAME/status as
    DiagnosticArray), /NAME/timing (JSON stage times, for the Plot panel) and, with
    --camera, /NAME/grid (OccupancyGrid, for the 3D panel). Needs the foxglove extra:
    pip install 'rtseg[foxglove]'.
    """
    from rtseg.foxglove_bridge import FoxgloveConfig, run_foxglove

    run_foxglove(FoxgloveConfig(endpoint=endpoint, names=tuple(names) or ("demo",), port=port,
                                bind=bind, allow_remote=allow_remote, overlay=not no_overlay,
                                cameras=tuple(cameras), fuse=fuse,
                                curve_server_key=curve_server_key, curve_secret=curve_secret))


@click.command()
@click.argument("endpoint")
@click.argument("topics", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(),
              help="FILE.mcap: one MCAP file of ROS 2 messages (opens in Foxglove); any other "
                   "name: a new rosbag2 folder (NAME/NAME_0.mcap ..., metadata.yaml) for "
                   "ros2 bag info / play.")
@click.option("--split-mb", type=float,
              help="Folder --out: start a new file past this many MB (ros2 bag record "
                   "--max-bag-size).")
@click.option("--split-seconds", type=float,
              help="Folder --out: start a new file once one spans this many seconds (ros2 bag "
                   "record --max-bag-duration).")
@click.option("--max-files", type=int,
              help="Split folder: keep only the newest N files, deleting the oldest as a new "
                   "one opens (a rolling recording of the last N x split).")
@click.option("--overlay", is_flag=True,
              help="Also record /NAME/overlay: each camera's colour overlay as JPEG (what the "
                   "viewer shows; Foxglove shows it in colour).")
@click.option("--count", type=int, help="Stop after this many messages.")
@click.option("--seconds", type=float, help="Stop after this many seconds.")
@click.option("--timeout", type=float, help="Stop when nothing arrives for this many seconds.")
@click.option("--mp4", type=click.Path(dir_okay=False),
              help="Also write the overlay video of the first camera to this file.")
@click.option("--mp4-fps", default=10.0, show_default=True, help="Frame rate of the --mp4 video.")
@camera_option(GRID_TOPIC.format("record"))
@fuse_option()
@curve_client_options
@stoppable("record")
def record(endpoint, topics, out, split_mb, split_seconds, max_files, overlay, count, seconds,
           timeout, mp4, mp4_fps, cameras, fuse, curve_server_key, curve_secret) -> None:
    """Record TOPICS (NAME/drivable, /classes, /image, /status) of the node at ENDPOINT.

    Masks become sensor_msgs/msg/Image (mono8), images sensor_msgs/msg/CompressedImage,
    status heartbeats diagnostic_msgs/msg/DiagnosticArray, on ROS-style topics
    (/NAME/drivable), in FILE.mcap or a rosbag2 folder (--out). Ctrl-C / SIGTERM finish the
    file and exit 0.
    """
    from rtseg.record import RecordConfig
    from rtseg.record import record as run_record

    report = run_record(RecordConfig(endpoint=endpoint, topics=tuple(topics), out=out,
                                     count=count, seconds=seconds, timeout_s=timeout, mp4=mp4,
                                     mp4_fps=mp4_fps, split_mb=split_mb,
                                     split_seconds=split_seconds, max_files=max_files,
                                     overlay=overlay, cameras=tuple(cameras), fuse=fuse,
                                     curve_server_key=curve_server_key,
                                     curve_secret=curve_secret))
    click.echo(report.summary(), err=True)


@click.command()
@click.option("--model", default="demo", show_default=True,
              help="Checkpoint, demo, engine manifest NAME.json or engine file.")
@click.option("--port", default=8000, show_default=True, help="HTTP port.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="HTTP address to listen on.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --bind.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@engine_options("torch", EAGER_DEFAULT_HELP)
@click.option("--max-mb", default=20.0, show_default=True, help="Largest request body (MB).")
@click.option("--camera", default=None, metavar="FILE",
              help="A camera file (see launch/cameras/demo.toml): enables ?format=grid, the "
                   "mask on the ground as nav_msgs/OccupancyGrid JSON.")
@drivable_option
@stoppable("serve", torch=True)
def serve(model, port, bind, allow_remote, device, engine, engine_cache, calib, precision,
          max_mb, camera, drivable) -> None:
    """HTTP segmentation: POST /segment (a JPEG/PNG body) -> an 8-bit PNG class mask.

    ?format=json gives the drivable fraction, class histogram and timings instead;
    ?format=grid (with --camera) the grid on the ground; GET /model describes the model,
    GET /healthz answers ok.
    """
    from rtseg.serve import ServeConfig, run_serve

    run_serve(ServeConfig(model=model, port=port, bind=bind, allow_remote=allow_remote,
                          device=device, max_bytes=int(max_mb * 1e6), camera=camera,
                          engine=engine, engine_cache=engine_cache, calib=calib,
                          precision=precision, drivable=drivable))


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--name", default="node", show_default=True, help="Stem of the two key files.")
def keys(folder, name) -> None:
    """Write a ZeroMQ CURVE key pair: FOLDER/NAME.key (public: give it to subscribers,
    --curve-server-key) and FOLDER/NAME.key_secret (keep it with the node, --curve-secret)."""
    from rtseg.curve import write_keys

    public, secret = write_keys(folder, name)
    click.echo(f"public key {public}\nsecret key {secret}")


@click.command()
@click.argument("recording", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def info(recording, as_json) -> None:
    """What RECORDING (FILE.mcap or a rosbag2 folder) holds: files, span, topics, counts.

    Like `ros2 bag info`, without ROS: per topic its ROS type, message count and rate; for
    rtseg record's files the endpoint and class names; a file cut short is counted to its end.
    """
    from rtseg.bag_info import format_info, recording_info

    facts = recording_info(recording)
    click.echo(json.dumps(facts) if as_json else format_info(facts))


@click.command()
@click.argument("recording", type=click.Path())
@click.option("--bind", default="tcp://127.0.0.1:5555", show_default=True,
              help="Where to publish (non-loopback needs --allow-remote).")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --bind.")
@click.option("--rate", default=1.0, show_default=True, help="Speed: 2 plays twice as fast.")
@click.option("--loop", is_flag=True, help="Start again at the end, until Ctrl-C.")
@click.option("--delay", default=1.0, show_default=True,
              help="Seconds to wait before the first message (subscribers connect).")
@stoppable("play")
def play(recording, bind, allow_remote, rate, loop, delay) -> None:
    """Publish an rtseg RECORDING on the wire again, at its recorded pace (like `ros2 bag
    play`): masks, images and status with their recorded seq and stamps, for consumers to
    run on a recorded drive without a camera or a model.
    """
    from rtseg.play import PlayConfig
    from rtseg.play import play as run_play

    click.echo(run_play(PlayConfig(path=recording, bind=bind, rate=rate, loop=loop,
                                   delay_s=delay, allow_remote=allow_remote)), err=True)


@click.command()
@click.argument("cameras", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--image", type=click.Path(dir_okay=False),
              help="A frame of that camera (PNG/JPEG) to draw the grid over.")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write that drawing "
              "(several cameras: their coverage of the grid from above).")
@click.option("--model", help="Also segment the frame with this model (a checkpoint, an "
                              "engine, demo): its overlay under the lines, its grid from above "
                              "beside it.")
def ground(cameras, image, out, model) -> None:
    """Check the camera file CAMERA (intrinsics, mount, grid) of --camera: prints what its
    grid covers as JSON (cells, the fraction in view, the nearest ground seen ahead, the
    horizon's row); with --image FRAME --out FILE.png draws the grid on the ground over a
    frame, lines every few metres, so a wrong mount or focal length shows; with --model
    the frame segmented too and its drivable area's grid from above beside it.

    Several CAMERA files (cameras fused with --fuse): each one's facts and what they see
    together (the fraction of cells any camera sees, and seen by 0, 1, 2... cameras);
    --out FILE.png draws that coverage from above (grey: no camera, green: two or more).
    """
    from rtseg.ground_draw import check_ground

    click.echo(json.dumps(check_ground(cameras, image, out, model), indent=1))


TOOLS = (echo, launch_, view, foxglove, record, serve, keys, info, play, ground)
