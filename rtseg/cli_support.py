"""What the command modules share: the stop-signal wrapper of long-running commands, the
group that turns RtsegError into one line and exit status 1, and the options `rtseg run`
and `rtseg bench` have in common. No commands here."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import click

from rtseg.config.commands import OVERLAP_MODES, PRECISIONS, RUN_ENGINES
from rtseg.errors import RtsegError


def stoppable(command: str, fast: bool = True, where: str = "", torch: bool = False,
              shared_cores: Callable[[dict], bool] | None = None):
    """For a long-running command: SIGINT/SIGTERM at any moment (start-up included) end it
    with exit status 0 and one summary line on stderr (rtseg.signals). `fast`: once
    stopped by a signal, with everything closed, skip the interpreter's slow teardown.
    `where`: what the summary says when the signal came before the command's own loop.
    `torch`: import torch first with stop signals held back (rtseg.signals.deferred).
    `shared_cores(kwargs)`: whether, with these arguments, its engine shares the cores
    with threads that keep working whatever it does (a live source's capture); then
    torch's idle threads sleep instead of spinning (rtseg.device.yield_idle_cpu_threads)."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if shared_cores is not None and shared_cores(kwargs):
                from rtseg.device import yield_idle_cpu_threads

                yield_idle_cpu_threads()
            from rtseg.signals import (
                fast_exit,
                import_deferred,
                stop_requests,
                stop_signal_received,
                stopped_by,
            )

            try:
                with stop_requests():
                    if torch:
                        import_deferred("torch")
                    result = fn(*args, **kwargs)
            except BaseException as exc:
                stop = stopped_by(exc)
                if stop is None:
                    raise
                click.echo(stop.summary(command, where), err=True)
                fast_exit(0) if fast else sys.exit(0)
            if fast and stop_signal_received():
                fast_exit(0)
            return result
        return inner
    return wrap


def live_sources(kwargs: dict) -> bool:
    """`shared_cores` of run and bench: whether any of their --source is live."""
    from rtseg.stream.sources import is_live

    return any(is_live(source) for source in kwargs.get("source") or ())


class Group(click.Group):
    """Turns RtsegError into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtsegError as exc:
            click.echo(f"rtseg: error: {exc}", err=True)
            sys.exit(1)


def check_rtseg_commands(spec, root: click.Group) -> None:
    """Parse every ``rtseg ...`` command of a launch spec (rtseg.launch.LaunchSpec) as its
    process will, in its working folder, without running it: an unknown command or option,
    a bad value or a missing argument is one line naming the file and line, before anything
    starts (a respawning node would otherwise print its usage error forever).

    Raises:
        RtsegError: ``FILE:LINE: [[process]] "NAME": rtseg CMD: problem``.
    """
    import contextlib
    from pathlib import Path

    for proc in spec.processes:
        args = list(proc.command[1:])
        while args and args[0] in ("-v", "--verbose"):
            args.pop(0)
        if proc.command[0] != "rtseg" or not args or args[0].startswith("-"):
            continue  # another program, or `rtseg --help` / `--version`
        parent = click.Context(root, info_name="rtseg")
        folder = spec.workdir(proc) or Path.cwd()
        command = root.get_command(parent, args[0])
        where = f'{proc.file}:{proc.line}: [[process]] "{proc.name}": rtseg {args[0]}'
        if command is None:
            raise RtsegError(f"{where}: no such command; the commands are "
                             + ", ".join(root.list_commands(parent)))
        try:
            with contextlib.chdir(folder if folder.is_dir() else Path.cwd()):
                command.make_context(args[0], args[1:], parent=parent)
        except click.exceptions.Exit:  # --help in the command: it would print and exit 0
            continue
        except click.ClickException as exc:
            raise RtsegError(f"{where}: {exc.format_message().rstrip('.')}; see "
                             f"`rtseg {args[0]} --help`") from None


def host_pipeline_options(fn):
    """--overlap and --mask-size, shared by `rtseg run` and `rtseg bench`."""
    fn = click.option("--mask-size", default="frame", show_default=True,
                      help="Size of the published masks: frame (each frame's), input (the "
                           "network's: no upsampling, fewer bytes) or HxW. CPU engines.")(fn)
    return click.option("--overlap", type=click.Choice(OVERLAP_MODES), default="on",
                        show_default=True,
                        help="Host pipeline: publish a batch while the next one infers "
                             "(off: one batch at a time).")(fn)


def drivable_option(fn):
    """--drivable NAME[,NAME...] (repeatable) -> a tuple of class names, () when not given."""
    return click.option(
        "--drivable", multiple=True, metavar="CLASS[,CLASS...]",
        callback=lambda ctx, param, given: tuple(
            name.strip() for value in given for name in value.split(",") if name.strip()),
        help="The classes that make up the drivable mask instead of the model's own, e.g. "
             "Road,Pavement for a robot that may use pavements [default: the model's].")(fn)


# --engine of the commands whose default is the eager checkpoint (run, serve)
EAGER_DEFAULT_HELP = ("torch: eager checkpoint. Others compile the checkpoint once into "
                      "--engine-cache (auto: the fastest this machine runs) and reuse it.")


def engine_options(default: str, engine_help: str):
    """--engine, --engine-cache, --calib, --precision and --threads, shared by the commands
    that run a model (run, bench, serve, eval, predict; default: the --engine default).
    --threads is applied before the command runs (rtseg.backends.threads) and not passed
    on to it."""
    def wrap(fn):
        @functools.wraps(fn)
        def with_threads(*args, threads: int | None = None, **kwargs):
            if threads is not None:
                from rtseg.backends.threads import set_cpu_threads

                set_cpu_threads(threads)
            return fn(*args, **kwargs)

        options = (
            click.option("--engine", default=default, show_default=True,
                         type=click.Choice(RUN_ENGINES), help=engine_help),
            click.option("--engine-cache", default="engines/cache", show_default=True,
                         help="Folder of cached engines."),
            click.option("--calib", type=click.Path(exists=True, file_okay=False),
                         help="Folder of real frames (like the camera's) for the parity gate "
                              "(and int8's calibration) of an engine compiled into "
                              "--engine-cache [default: generated scenes]."),
            click.option("--precision", type=click.Choice(PRECISIONS),
                         help="Of the engine compiled into --engine-cache: int8 (needs "
                              "--calib; OpenVINO, fastest on a CPU with VNNI but no BF16), "
                              "bf16, fp32, fp16 (CUDA) [default: the format's: fp16 on CUDA, "
                              "bf16 where the CPU has it, else fp32]."),
            click.option("--threads", type=click.IntRange(min=1),
                         help="CPU threads the engine computes with (torch, ONNX Runtime, "
                              "AOTInductor, OpenVINO), e.g. 1 to leave the other cores to "
                              "the robot's other processes [default: every core]."),
        )
        for option in reversed(options):
            with_threads = option(with_threads)
        return with_threads
    return wrap
