"""`--threads N`: the CPU threads an engine computes with, one setting for every runtime.

On a robot the segmentation node shares the CPU with localisation and planning; by
default each runtime takes every core. `set_cpu_threads(n)` (before the engine loads)
sets torch's intra-op threads, which eager models use and which ONNX Runtime's session
(`intra_op_num_threads`) and AOTInductor's OpenMP regions follow, and OpenVINO's
``INFERENCE_NUM_THREADS``, ahead of its RTSEG_OV_THREADS environment variable. The
node's pre- and post-processing already run on one thread each (OpenCV's kernels are set
to one thread by the pipeline).
"""

from __future__ import annotations

from rtseg.errors import RtsegError

_threads: int | None = None


def set_cpu_threads(threads: int) -> None:
    """Compute with `threads` CPU threads in every engine loaded from now on."""
    global _threads
    if threads < 1:
        raise RtsegError(f"--threads {threads}: give a thread count >= 1")
    import torch

    torch.set_num_threads(threads)
    _threads = threads


def cpu_threads() -> int | None:
    """The count `set_cpu_threads` set, or None (each runtime's own choice)."""
    return _threads
