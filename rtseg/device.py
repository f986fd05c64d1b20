"""Device choice shared by training and inference."""

from __future__ import annotations

import os
from pathlib import Path

# libgomp's settings of how its idle threads wait; rtseg leaves either alone when it is set
OMP_WAIT_KNOBS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def pick_device(name: str = "auto"):
    """`auto` -> cuda when available, else cpu; `cpu`, `cuda`, `cuda:1` are taken as given."""
    import torch

    from rtseg.errors import RtsegError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise RtsegError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RtsegError(f"device {name!r} asked for, but no CUDA GPU is visible: use --device cpu")
    return device


def cpu_has_bf16() -> bool:
    """True where the CPU computes BF16 natively (AVX512-BF16 or AMX). Elsewhere torch
    emulates BF16 autocast: a training step ran 8.7x slower than FP32 on an AVX2 CPU."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def cpu_has_vnni() -> bool | None:
    """AVX512-VNNI or AVX-VNNI (INT8 dot products) in /proc/cpuinfo; None where there is no
    such file."""
    info = cpu_info()
    return None if info is None else bool(info[1] & {"avx512_vnni", "avx_vnni"})


def int8_beats_auto() -> bool:
    """True where the CPU has INT8 dot products (cpu_has_vnni) but no native BF16: there
    OpenVINO's auto precision is fp32, and an int8 engine ran 1.7-2.0x faster than it
    (benchmarks/results/cpu-engines-vnni-2026-12-07.md)."""
    return bool(cpu_has_vnni()) and not cpu_has_bf16()


INT8_ADVICE = ("an OpenVINO int8 engine (--precision int8 --calib DIR, real frames like "
               "the camera's) runs about 2x faster than fp32 here, gated against the FP32 "
               "masks")
INT8_HINT = f"this CPU has VNNI (INT8 dot products) but no native BF16: {INT8_ADVICE}"


def cpu_info() -> tuple[str, frozenset[str]] | None:
    """(model name, flags) of the CPU from /proc/cpuinfo; None where there is no such file
    (not Linux). The name alone can hide AVX2-only and AMX machines; the flags tell."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    return name, frozenset(flags)


def describe_cpu() -> str:
    """The CPU's model name and the vector extensions that decide the engines' speed, for
    benchmark records: "NAME (avx2 avx512f ... amx_int8)"."""
    import platform

    info = cpu_info()
    if info is None:
        return platform.processor() or "CPU unknown"
    name, flags = info
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
    return (f"{name or platform.processor() or 'CPU unknown'} "
            f"({' '.join(f for f in wanted if f in flags) or 'no AVX2'})")


def yield_idle_cpu_threads() -> None:
    """Make torch's OpenMP threads sleep, not spin, between parallel regions: call before
    torch is imported, in a process whose engine shares the cores with threads that keep
    working whatever it does (`rtseg run` / `rtseg bench` on a live source: camera,
    stream, demo).

    libgomp (torch's OpenMP on Linux) by default spins an idle thread ~300,000 turns (a
    few milliseconds) before it sleeps, after every one of an eager forward's many
    parallel regions, so the engine's threads take the cores (and, waiting on the GIL, the
    time) the node's other threads need. On 2 cores, eager demo model, mean of three
    rounds (benchmarks/results/cpu-omp-wait-avx2.md): the node on the live demo published
    16.2 FPS with OMP_WAIT_POLICY=PASSIVE against 7.1, on two demo sources 13.2 against
    1.7, and frames from memory at 512x1024 (engine-bound) 3.72 against 3.71. A video
    file read as fast as the node goes did better spinning (three runs each: 17.2 FPS
    against 24.9, noisy), since its reader waits once it is ahead: files and memory frames
    keep libgomp's default. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins; nothing
    changes once torch is loaded.
    """
    if not any(knob in os.environ for knob in OMP_WAIT_KNOBS):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
