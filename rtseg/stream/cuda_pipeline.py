"""The CUDA path: frames -> masks with the host doing little more than two memcpys' worth.

Per batch (one frame per camera), on slot k of a ring of `slots`:
1. the frame is in pinned host memory: already (frames decoded or kept there, e.g. the
   benchmark's), or copied once into slot k's pinned buffer;
2. H2D `non_blocking` on the copy stream, then an event;
3. the compute stream waits for that event only, then on the GPU: BGR uint8 HWC ->
   normalised RGB NCHW in the engine's dtype (FP16 for FP16 engines), resize to the
   network size, inference, logits resized bilinearly to the frame size, argmax, drivable
   lookup -> uint8 masks; with `graphs`, those three steps are one CUDA graph replay
   (static-shape torch / AOTInductor engines; others run them eagerly);
4. the D2H stream waits for the compute event and copies both masks `non_blocking` into
   slot k's pinned output buffers, then records `done`.
`result()` waits on `done` (an event, never a device-wide synchronize); `release()` hands
the slot back. With 3 slots, frame k+1 uploads while frame k computes and k-1 downloads.
Buffers are allocated when a slot first sees a batch shape, and reused after that.

Written against the documented torch.cuda API; its tests are marked `gpu`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rtseg.backends.base import Backend
from rtseg.metrics import drivable_lut
from rtseg.models import logits_to_classes
from rtseg.stream.pipeline import Masks, infer_in_chunks

log = logging.getLogger(__name__)

WARMUP_RUNS = 3


@dataclass
class _Buffers:
    """Per-slot memory for a batch of frames of `shapes` (each (H, W))."""

    shapes: tuple[tuple[int, int], ...]
    host_in: list[torch.Tensor]      # (H, W, 3) uint8, pinned
    dev_in: list[torch.Tensor]       # (H, W, 3) uint8, CUDA
    dev_classes: list[torch.Tensor]  # (H, W) uint8, CUDA
    dev_drivable: list[torch.Tensor]
    host_classes: list[torch.Tensor]  # (H, W) uint8, pinned
    host_drivable: list[torch.Tensor]


def _pinned(shape: tuple) -> torch.Tensor:
    """An uninitialised uint8 tensor of `shape` in page-locked host memory."""
    return torch.empty(tuple(shape), dtype=torch.uint8, pin_memory=True)


def pinned_array(shape: tuple) -> np.ndarray:
    """`_pinned(shape)` as a numpy array (the view keeps the tensor alive)."""
    return _pinned(shape).numpy()


def _allocate(shapes, device) -> _Buffers:
    def cuda(shape):
        return torch.empty(shape, dtype=torch.uint8, device=device)

    return _Buffers(tuple(shapes), [_pinned((*s, 3)) for s in shapes],
                    [cuda((*s, 3)) for s in shapes], [cuda(s) for s in shapes],
                    [cuda(s) for s in shapes], [_pinned(s) for s in shapes],
                    [_pinned(s) for s in shapes])


class _Slot:
    """One frame batch in flight: buffers, timing events, and whether it is taken."""

    NAMES = ("start", "uploaded", "begin", "pre", "infer", "post", "d2h_start", "done")

    def __init__(self):
        self.buffers: _Buffers | None = None
        self.events = {n: torch.cuda.Event(enable_timing=True) for n in self.NAMES}
        self.busy = False
        self.graphed = False


class CudaInFlight:
    """A submitted batch on slot k; `result()` waits for its masks, `release()` frees k."""

    def __init__(self, pipeline: CudaPipeline, slot: _Slot, count: int):
        self._pipeline, self._slot, self._count = pipeline, slot, count

    def result(self) -> list[Masks]:
        """Masks of each frame: (H, W) uint8 views of pinned memory, valid until release()."""
        ev = self._slot.events
        ev["done"].synchronize()
        timings = {"h2d": ev["start"].elapsed_time(ev["uploaded"]),
                   "d2h": ev["d2h_start"].elapsed_time(ev["done"])}
        if self._slot.graphed:  # one graph: pre + infer + post
            timings["infer"] = ev["begin"].elapsed_time(ev["post"])
        else:
            timings.update(pre=ev["begin"].elapsed_time(ev["pre"]),
                           infer=ev["pre"].elapsed_time(ev["infer"]),
                           post=ev["infer"].elapsed_time(ev["post"]))
        b = self._slot.buffers
        return [Masks(b.host_classes[i].numpy(), b.host_drivable[i].numpy(), timings)
                for i in range(self._count)]

    def release(self) -> None:
        """Give the slot back for the next batch (after the masks were published)."""
        self._pipeline._release(self._slot)


class CudaPipeline:
    """`submit(images) -> CudaInFlight` for a backend on a CUDA device (see module doc)."""

    def __init__(self, backend: Backend, slots: int = 3, graphs: bool = True):
        self.backend, self.spec, self.slots = backend, backend.spec, slots
        self.device = torch.device(backend.device)
        self.dtype = backend.dtype
        self.copy_stream = torch.cuda.Stream(self.device)
        self.compute_stream = torch.cuda.Stream(self.device)
        self.d2h_stream = torch.cuda.Stream(self.device)
        self._ring = [_Slot() for _ in range(slots)]
        self._next = 0
        self._cond = threading.Condition()
        self._graphs_wanted = graphs and backend.graph_capturable
        self._graph: _GraphRunner | None = None
        # what became of CUDA graphs, for reports: off / not capturable / captured / failed
        self.graph_state = ("off" if not graphs else "pending" if self._graphs_wanted
                            else f"not capturable ({type(backend).__name__})")
        mean = torch.tensor(self.spec.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.spec.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self._shift, self._scale = mean, 1.0 / std
        self._lut = torch.from_numpy(drivable_lut(self.spec.drivable_ids)).to(self.device)
        self._static_batch = backend.static_batch

    # -- stages on the GPU -------------------------------------------------------------
    def compute(self, frames: Sequence[torch.Tensor], classes: Sequence[torch.Tensor],
                drivable: Sequence[torch.Tensor], events: dict | None = None) -> None:
        """frames N x (H_i, W_i, 3) uint8 BGR on CUDA -> classes / drivable N x (H_i, W_i)
        uint8 written in place. Events `pre` / `infer` are recorded between the stages."""
        h, w = self.spec.input_size
        net_in = torch.empty((len(frames), 3, h, w), dtype=self.dtype, device=self.device)
        for i, frame in enumerate(frames):
            x = frame.permute(2, 0, 1)[None].flip(1).float()  # (1, 3, H, W) RGB
            if tuple(x.shape[-2:]) != (h, w):
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
            net_in[i:i + 1].copy_((x - self._shift) * self._scale)
        _record(events, "pre")
        logits = infer_in_chunks(self.backend, net_in, self._static_batch)
        _record(events, "infer")
        for i, out in enumerate(classes):
            size = tuple(out.shape)
            one = logits[i:i + 1]
            if tuple(one.shape[-2:]) != size:
                one = F.interpolate(one, size=size, mode="bilinear", align_corners=False)
            cls = logits_to_classes(one)[0]
            out.copy_(cls)
            drivable[i].copy_(self._lut[cls])

    # -- the ring ----------------------------------------------------------------------
    def submit(self, images: Sequence[np.ndarray]) -> CudaInFlight:
        """Enqueue N frames (H_i, W_i, 3) uint8 BGR; returns at once (after a free slot)."""
        slot = self._acquire()
        shapes = tuple(tuple(im.shape[:2]) for im in images)
        if slot.buffers is None or slot.buffers.shapes != shapes:
            slot.buffers = _allocate(shapes, self.device)
        buf, ev = slot.buffers, slot.events
        with torch.inference_mode():
            self._upload(images, buf, ev)
            with torch.cuda.stream(self.compute_stream):
                self.compute_stream.wait_event(ev["uploaded"])
                ev["begin"].record(self.compute_stream)
                slot.graphed = self._run_compute(buf, ev)
                ev["post"].record(self.compute_stream)
            with torch.cuda.stream(self.d2h_stream):
                self.d2h_stream.wait_event(ev["post"])
                ev["d2h_start"].record(self.d2h_stream)
                for i in range(len(images)):
                    buf.host_classes[i].copy_(buf.dev_classes[i], non_blocking=True)
                    buf.host_drivable[i].copy_(buf.dev_drivable[i], non_blocking=True)
                ev["done"].record(self.d2h_stream)
        return CudaInFlight(self, slot, len(images))

    def _upload(self, images, buf: _Buffers, ev: dict) -> None:
        """Host frames -> buf.dev_in on the copy stream, straight from pinned memory when
        the frame already lives there, else through the slot's pinned buffer."""
        with torch.cuda.stream(self.copy_stream):
            ev["start"].record(self.copy_stream)
            for i, image in enumerate(images):
                src = torch.from_numpy(image)
                if not src.is_pinned():
                    buf.host_in[i].copy_(src)
                    src = buf.host_in[i]
                buf.dev_in[i].copy_(src, non_blocking=True)
            ev["uploaded"].record(self.copy_stream)

    def _run_compute(self, buf: _Buffers, ev: dict) -> bool:
        """Pre + infer + post for the slot's batch on the compute stream; True if graphed."""
        if self._graphs_wanted:
            if self._graph is None or self._graph.shapes != buf.shapes:
                self._graph, self.graph_state = _GraphRunner.capture(self, buf.shapes)
                self._graphs_wanted = self._graph is not None
            if self._graph is not None:
                self._graph.run(buf)
                return True
        self.compute(buf.dev_in, buf.dev_classes, buf.dev_drivable, ev)
        return False

    def _acquire(self) -> _Slot:
        with self._cond:
            slot = self._ring[self._next]
            self._cond.wait_for(lambda: not slot.busy)
            slot.busy = True
            self._next = (self._next + 1) % self.slots
            return slot

    def _release(self, slot: _Slot) -> None:
        with self._cond:
            slot.busy = False
            self._cond.notify_all()

    def __call__(self, image: np.ndarray) -> Masks:
        """One frame (H, W, 3) uint8 BGR -> Masks (copies, independent of the slot)."""
        job = self.submit([image])
        try:
            m = job.result()[0]
            return Masks(m.classes.copy(), m.drivable.copy(), m.timings_ms)
        finally:
            job.release()


class _GraphRunner:
    """One captured CUDA graph of `compute` on static buffers for frames of `shapes`."""

    def __init__(self, shapes, graph, static_in, static_classes, static_drivable):
        self.shapes, self.graph = shapes, graph
        self.static_in, self.classes, self.drivable = static_in, static_classes, static_drivable

    @classmethod
    def capture(cls, pipe: CudaPipeline, shapes) -> tuple[_GraphRunner | None, str]:
        """Warm up on a side stream, then capture -> (runner, "captured"); (None, "failed:
        why") and eager from then on when the engine cannot be captured."""
        dev = pipe.device
        static_in = [torch.zeros((*s, 3), dtype=torch.uint8, device=dev) for s in shapes]
        classes = [torch.empty(s, dtype=torch.uint8, device=dev) for s in shapes]
        drivable = [torch.empty(s, dtype=torch.uint8, device=dev) for s in shapes]
        graph, state = capture_graph(lambda: pipe.compute(static_in, classes, drivable),
                                     pipe.compute_stream)
        if graph is None:
            return None, state
        log.info("captured a CUDA graph for frames %s", list(shapes))
        return cls(tuple(shapes), graph, static_in, classes, drivable), state

    def run(self, buf: _Buffers) -> None:
        """On the current (compute) stream: copy in, replay, copy out."""
        for dst, src in zip(self.static_in, buf.dev_in):
            dst.copy_(src)
        self.graph.replay()
        for i in range(len(self.shapes)):
            buf.dev_classes[i].copy_(self.classes[i])
            buf.dev_drivable[i].copy_(self.drivable[i])


def capture_graph(fn, stream: torch.cuda.Stream) -> tuple[torch.cuda.CUDAGraph | None, str]:
    """Warm `fn()` up on a side stream that follows `stream`, then capture one call of it
    -> (graph, "captured"); (None, "failed: why") when it cannot be captured (engines that
    sync or allocate on the host), after which callers run `fn` eagerly."""
    try:
        side = torch.cuda.Stream(stream.device)
        side.wait_stream(stream)
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                fn()
        stream.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the publishing thread may wait on events meanwhile
        with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
            fn()
    except Exception as exc:  # what cannot be captured raises various types
        log.warning("CUDA graph capture failed (%s); running eagerly", exc)
        return None, f"failed: {type(exc).__name__}: {exc}"[:300]
    return graph, "captured"


def _record(events: dict | None, name: str) -> None:
    if events is not None:
        events[name].record()
