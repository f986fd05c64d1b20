"""OpenVINO backend: an IR (NAME.xml + NAME.bin) compiled for the CPU plugin.

Batch 1 compiles with the LATENCY hint and one infer request; a static batch B > 1 is
reshaped to single frames and compiled with the THROUGHPUT hint, its frames spread over
several infer requests (one per CPU stream) that run at once. The inference precision
(`INFERENCE_PRECISION_HINT`: bf16 or f32) comes from the manifest; threads from the
`threads` argument, else `--threads` (rtseg.backends.threads), else the RTSEG_OV_THREADS
environment variable, else OpenVINO's choice. OpenVINO releases the GIL while it infers,
so the node's other threads overlap.
`classes()` compiles the same IR once more with the argmax in the graph, for callers that
want class maps (the CPU node): the engine writes N x H x W bytes instead of N x C x H x W
floats, and nobody takes the argmax on the host. `frames_to_classes()` compiles it once more
taking the frames themselves, (N, H, W, 3) uint8 BGR: the colour swap and the normalisation
run in the engine too (OpenVINO's PrePostProcessor), so the node's thread only resizes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from rtseg.backends.base import Backend, check_input_shape, spec_from_manifest
from rtseg.errors import RtsegError, type_name
from rtseg.manifest import Manifest

THREADS_ENV = "RTSEG_OV_THREADS"
HINTS = {"bf16": "bf16", "f32": "f32", "fp32": "f32"}  # manifest value -> OpenVINO's


@functools.lru_cache(maxsize=1)
def ov_core():
    """One OpenVINO Core per process."""
    try:
        import openvino as ov
    except ImportError:
        raise RtsegError("OpenVINO is not installed: pip install openvino") from None
    return ov.Core()


def openvino_version() -> str:
    """The installed OpenVINO's full version string."""
    ov_core()
    import openvino as ov

    return ov.__version__


def openvino_machine() -> dict:
    """This CPU as OpenVINO sees it: name, optimisation capabilities, BF16 and VNNI."""
    from rtseg.device import cpu_has_vnni

    core = ov_core()
    caps = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    return {"type": "cpu", "name": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "capability": None, "optimization_capabilities": caps, "bf16": "BF16" in caps,
            "vnni": cpu_has_vnni()}


def check_openvino_fits(manifest: Manifest) -> None:
    """Refuse an IR of another OpenVINO version, or BF16 inference on a CPU without BF16."""
    want, have = manifest.versions.get("openvino"), openvino_version()
    if want != have:
        raise RtsegError(f"IR built with OpenVINO {want}, this machine has OpenVINO {have}: "
                         "compile it again here")
    hint = manifest.runtime.get("inference_precision_hint", "f32")
    machine = openvino_machine()
    if hint == "bf16" and not machine["bf16"]:
        built = manifest.device.get("name")
        raise RtsegError(f"engine infers in BF16 (built on {built}, with BF16), this CPU "
                         f"({machine['name']}) has no BF16 (capabilities: "
                         f"{', '.join(machine['optimization_capabilities'])}): compile it "
                         "again here with --precision fp32 or auto")


class OpenVinoBackend(Backend):
    """Runs an IR; batch (N,3,H,W) float32 CPU tensors in, logits (N,C,H,W) float32 out, or
    with `classes()` (N,H,W) uint8 class maps from the same IR with the argmax appended as a
    TopK in the graph, or with `frames_to_classes()` the same from (N,H,W,3) uint8 BGR
    frames (each graph compiled on first use)."""

    graph_capturable = False
    fused_argmax = True
    fused_preprocess = True

    def __init__(self, manifest: Manifest, engine: Path, device: torch.device,
                 threads: int | None = None):
        self.manifest, self.device = manifest, torch.device("cpu")  # OpenVINO's device
        self.spec = spec_from_manifest(manifest)
        self.dtype = torch.float32
        shape = manifest.inputs[0].shape
        self.static_batch = None if shape[0] == -1 else int(shape[0])
        self._engine, self._threads = engine, _threads(threads)
        self._hint = HINTS.get(manifest.runtime.get("inference_precision_hint", "f32"), "f32")
        self._graphs = {"logits": self._load("logits")}
        self._runtime = self._runtime_info(self._graphs["logits"])

    def _load(self, kind: str) -> _Graph:
        """Compile the IR for `kind`: logits; classes (argmax appended); frames (argmax
        appended, uint8 BGR frames in)."""
        out = self.manifest.outputs[0].shape
        if kind == "logits":
            return _Graph(self._compile(), self.static_batch, out, np.float32,
                          self.manifest.dynamic)
        spec = self.spec

        def frames(model):
            return with_frame_input(with_argmax(model), spec.mean, spec.std)

        compiled = self._compile(with_argmax if kind == "classes" else frames)
        return _Graph(compiled, self.static_batch, (out[0], *out[2:]), np.uint8,
                      self.manifest.dynamic)

    def _compile(self, edit=None):
        core, engine = ov_core(), self._engine
        try:
            model = core.read_model(str(engine))
        except RuntimeError as exc:  # missing .bin, corrupt XML, foreign IR
            raise RtsegError(f"OpenVINO could not read {engine} (and its .bin): "
                             f"{_first_line(exc)}") from None
        throughput = self.static_batch is not None and self.static_batch > 1
        if throughput:  # one frame per infer request, several requests at once
            model.reshape([1, *self.manifest.inputs[0].shape[1:]])
        if edit is not None:
            model = edit(model)
        config = {"PERFORMANCE_HINT": "THROUGHPUT" if throughput else "LATENCY",
                  "INFERENCE_PRECISION_HINT": self._hint}
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        try:
            return core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            raise RtsegError(f"OpenVINO could not compile {engine}: {_first_line(exc)}") from None

    @property
    def runtime_info(self) -> dict:
        """Threads, streams, infer requests and inference precision OpenVINO chose."""
        return dict(self._runtime)

    @staticmethod
    def _runtime_info(graph: _Graph) -> dict:
        get = graph.compiled.get_property
        return {"inference_precision": _precision_name(get("INFERENCE_PRECISION_HINT")),
                "performance_hint": str(get("PERFORMANCE_HINT")),
                "streams": int(get("NUM_STREAMS")),
                "threads": int(get("INFERENCE_NUM_THREADS")),
                "infer_requests": graph.requests}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """batch (N, 3, H, W) float32 -> logits (N, C, H, W) float32 CPU tensor (fresh)."""
        return torch.from_numpy(self._run("logits", self._floats(batch)))

    def classes(self, batch: torch.Tensor) -> torch.Tensor:
        """batch (N, 3, H, W) float32 -> (N, H, W) uint8 class maps, argmax in the engine."""
        return torch.from_numpy(self._run("classes", self._floats(batch)))

    def frames_to_classes(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, H, W, 3) uint8 BGR at the input size -> (N, H, W) uint8 class maps:
        BGR->RGB, (v / 255 - mean) / std and the argmax all in the engine."""
        if frames.dtype != torch.uint8:
            raise RtsegError(f"frames_to_classes takes uint8 frames, got {frames.dtype}")
        n, _, h, w = self.manifest.inputs[0].shape
        check_input_shape((n, h, w, 3), frames.shape)
        return torch.from_numpy(self._run("frames", np.ascontiguousarray(frames.numpy())))

    def _floats(self, batch: torch.Tensor) -> np.ndarray:
        """batch (N, 3, H, W) -> a contiguous float32 array, once its shape fits the IR."""
        check_input_shape(self.manifest.inputs[0].shape, batch.shape)
        return np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())

    def _run(self, kind: str, x: np.ndarray) -> np.ndarray:
        """The graph of `kind` (compiled on first use) on the ready input `x`."""
        if kind not in self._graphs:
            self._graphs[kind] = self._load(kind)
        return self._graphs[kind].run(x)

    def close(self) -> None:
        self._graphs = {}


def with_argmax(model):
    """The IR `model` ((N, 3, H, W) -> (N, C, H, W) logits) with its output replaced by the
    class map (N, H, W) u8: a stable TopK (k = 1, the first class on ties) over C, or
    logit > 0 for a single-channel (binary) model.

    The TopK runs on the logits reshaped to (N, C, H*W): on the 4-D tensor the CPU plugin
    keeps a blocked or channels-last layout and its TopK over C took a quarter of the
    frame at 512x1024 (12-24 ms, 11 classes, AMX Xeon); the reshape makes it one
    plain reorder and a TopK of under a millisecond, with the same result
    (benchmarks/results/cpu-openvino-argmax-amx.md). Logits made by a DepthToSpace (a
    pixel shuffle: rtseg.models.upsample) get the argmax before it, on the coarse phases,
    and only the class map is shuffled."""
    import openvino as ov
    from openvino import opset11 as ops

    (result,) = model.get_results()
    logits = result.input_value(0)
    channels = logits.get_partial_shape()[1]
    shuffled = _argmax_before_shuffle(logits)
    if shuffled is not None:
        classes = shuffled
    elif channels.is_static and channels.get_length() == 1:
        index = ops.greater(logits, ops.constant(np.float32(0))).output(0)
        classes = ops.squeeze(index, np.array([1], np.int64))
    else:
        flat = ops.reshape(logits, np.array([0, 0, -1], np.int64), special_zero=True)
        index = ops.topk(flat, np.int64(1), 1, "max", "value", ov.Type.i32,
                         stable=True).output(1)  # (N, 1, H*W)
        size = ops.gather(ops.shape_of(logits, ov.Type.i64), np.array([0, 2, 3], np.int64),
                          np.int64(0))
        classes = ops.reshape(index, size, special_zero=False)
    classes = ops.convert(classes, ov.Type.u8)
    return ov.Model([ops.result(classes)], model.get_parameters(), "rtseg-classes")


def _argmax_before_shuffle(logits):
    """The class map (N, H, W) u8 of `logits` when they are DepthToSpace(x) of x
    (N, C * r * r, h, w) with C > 1 known: TopK over C on x's coarse phases (the same
    classes, the same first-class tie rule), then the index map alone is shuffled;
    None for any other producer."""
    import openvino as ov
    from openvino import opset11 as ops

    node, channels = logits.get_node(), logits.get_partial_shape()[1]
    if node.get_type_name() != "DepthToSpace" or not channels.is_static \
            or channels.get_length() < 2:
        return None
    attrs, coarse = node.get_attributes(), node.input_value(0)
    r, c = int(attrs["block_size"]), channels.get_length()
    # depth_first: channel c * r * r + k; blocks_first: channel k * C + c
    by_class = attrs["mode"] == "depth_first"
    flat = ops.reshape(coarse, np.array([0, c, -1] if by_class else [0, r * r, c, -1],
                                        np.int64), special_zero=True)
    index = ops.topk(flat, np.int64(1), 1 if by_class else 2, "max", "value", ov.Type.i32,
                     stable=True).output(1)
    shape = ops.shape_of(coarse, ov.Type.i64)
    size = ops.concat([ops.gather(shape, np.array([0], np.int64), np.int64(0)),
                       ops.constant(np.array([r * r], np.int64)),
                       ops.gather(shape, np.array([2, 3], np.int64), np.int64(0))], 0)
    index = ops.reshape(index, size, special_zero=False)  # (N, r * r, h, w)
    shuffled = ops.depth_to_space(ops.convert(index, ov.Type.u8), attrs["mode"], r)
    return ops.squeeze(shuffled, np.array([1], np.int64))


def with_frame_input(model, mean, std):
    """The IR `model`, whose input is (N, 3, H, W) float32 normalised RGB, taking
    (N, H, W, 3) uint8 BGR frames instead: OpenVINO's PrePostProcessor puts the conversion
    to float, the BGR->RGB swap and (v - 255 mean) / (255 std) in front of it, so they run
    on the engine's threads (the same masks as the host's Preprocessor at the input size:
    benchmarks/results/cpu-frame-input-amx-agreement.md)."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    frame = ppp.input()
    frame.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
        .set_color_format(ColorFormat.BGR)
    frame.model().set_layout(ov.Layout("NCHW"))
    frame.preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB) \
        .mean([255.0 * float(m) for m in mean]).scale([255.0 * float(s) for s in std])
    return ppp.build()


class _Graph:
    """One compiled graph and its infer request (batch 1 or dynamic), or a queue of requests
    (static batch B > 1, one frame each); `out_shape` is its output's (B, ...) shape."""

    def __init__(self, compiled, static_batch: int | None, out_shape, dtype, dynamic: bool):
        self.compiled, self.out_shape, self.dtype = compiled, out_shape, dtype
        self.dynamic = dynamic
        self.queue = self.request = None
        if static_batch and static_batch > 1:
            import openvino as ov

            optimal = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self.queue = ov.AsyncInferQueue(compiled, max(1, min(optimal, static_batch)))
        else:
            self.request = compiled.create_infer_request()

    @property
    def requests(self) -> int:
        return len(self.queue) if self.queue is not None else 1

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 -> the output for all N frames (a fresh array)."""
        return self._one(x) if self.queue is None else self._spread(x)

    def _one(self, x: np.ndarray) -> np.ndarray:
        """One request on the whole input; OpenVINO writes straight into a new array."""
        if self.dynamic:
            return self.request.infer({0: x}, share_inputs=True)[0]
        import openvino as ov

        out = np.empty(self.out_shape, self.dtype)
        self.request.set_output_tensor(0, ov.Tensor(out, shared_memory=True))
        self.request.infer({0: x}, share_inputs=True, share_outputs=True)
        return out

    def _spread(self, x: np.ndarray) -> np.ndarray:
        """Frame i of (N, 3, H, W) on a free request of the queue; all run at once."""
        out = np.empty((x.shape[0], *self.out_shape[1:]), self.dtype)

        def done(request, i: int) -> None:
            out[i] = request.get_output_tensor(0).data[0]

        self.queue.set_callback(done)
        for i in range(x.shape[0]):
            self.queue.start_async({0: x[i:i + 1]}, userdata=i, share_inputs=True)
        self.queue.wait_all()
        return out


def _threads(threads: int | None) -> int | None:
    """The argument, else --threads (rtseg.backends.threads), else RTSEG_OV_THREADS."""
    from rtseg.backends.threads import cpu_threads

    if threads is not None or (threads := cpu_threads()) is not None:
        return threads
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise RtsegError(f"{THREADS_ENV}={text!r} is not a thread count >= 1: unset it or "
                         "give a positive integer")
    return int(text)


def _precision_name(value) -> str:
    """OpenVINO element type (bf16, f32, ...) as a short name."""
    name = getattr(value, "get_type_name", lambda: str(value))()
    return {"bf16": "bf16", "f32": "f32", "f16": "f16"}.get(name, name)


def _first_line(exc: Exception) -> str:
    lines = [s for s in str(exc).splitlines() if s.strip()]
    return lines[0] if lines else type_name(exc)
