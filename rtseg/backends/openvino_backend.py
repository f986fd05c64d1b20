"""OpenVINO backend: an IR (NAME.xml + NAME.bin) compiled for the CPU plugin.

Batch 1 compiles with the LATENCY hint and one infer request; a static batch B > 1 is
reshaped to single frames and compiled with the THROUGHPUT hint, its frames spread over
several infer requests (one per CPU stream) that run at once. The inference precision
(`INFERENCE_PRECISION_HINT`: bf16 or f32) comes from the manifest; threads from the
`threads` argument, else the RTSEG_OV_THREADS environment variable, else OpenVINO's
choice. OpenVINO releases the GIL while it infers, so the node's other threads overlap.
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
    core = ov_core()
    caps = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    return {"type": "cpu", "name": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "capability": None, "optimization_capabilities": caps, "bf16": "BF16" in caps,
            "vnni": _has_vnni()}


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
    """Runs an IR; batch (N,3,H,W) float32 CPU tensors in, logits (N,C,H,W) float32 out."""

    graph_capturable = False

    def __init__(self, manifest: Manifest, engine: Path, device: torch.device,
                 threads: int | None = None):
        self.manifest, self.device = manifest, torch.device("cpu")  # OpenVINO's device
        self.spec = spec_from_manifest(manifest)
        self.dtype = torch.float32
        shape = manifest.inputs[0].shape
        self.static_batch = None if shape[0] == -1 else int(shape[0])
        hint = HINTS.get(manifest.runtime.get("inference_precision_hint", "f32"), "f32")
        self.compiled = self._compile(engine, hint, _threads(threads))
        self.queue = None
        if self.static_batch and self.static_batch > 1:
            import openvino as ov

            self.queue = ov.AsyncInferQueue(self.compiled, self._requests())
        else:
            self.request = self.compiled.create_infer_request()
        self._runtime = self._runtime_info()

    def _compile(self, engine: Path, hint: str, threads: int | None):
        core = ov_core()
        try:
            model = core.read_model(str(engine))
        except RuntimeError as exc:  # missing .bin, corrupt XML, foreign IR
            raise RtsegError(f"OpenVINO could not read {engine} (and its .bin): "
                             f"{_first_line(exc)}") from None
        throughput = self.static_batch is not None and self.static_batch > 1
        if throughput:  # one frame per infer request, several requests at once
            model.reshape([1, *self.manifest.inputs[0].shape[1:]])
        config = {"PERFORMANCE_HINT": "THROUGHPUT" if throughput else "LATENCY",
                  "INFERENCE_PRECISION_HINT": hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            return core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            raise RtsegError(f"OpenVINO could not compile {engine}: {_first_line(exc)}") from None

    def _requests(self) -> int:
        optimal = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        return max(1, min(optimal, self.static_batch))

    @property
    def runtime_info(self) -> dict:
        """Threads, streams, infer requests and inference precision OpenVINO chose."""
        return dict(self._runtime)

    def _runtime_info(self) -> dict:
        get = self.compiled.get_property
        return {"inference_precision": _precision_name(get("INFERENCE_PRECISION_HINT")),
                "performance_hint": str(get("PERFORMANCE_HINT")),
                "streams": int(get("NUM_STREAMS")),
                "threads": int(get("INFERENCE_NUM_THREADS")),
                "infer_requests": self.queue.__len__() if self.queue is not None else 1}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """batch (N, 3, H, W) float32 -> logits (N, C, H, W) float32 CPU tensor (fresh)."""
        check_input_shape(self.manifest.inputs[0].shape, batch.shape)
        x = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        if self.queue is None:
            return torch.from_numpy(self._infer_one(x))
        return torch.from_numpy(self._infer_spread(x))

    def _infer_one(self, x: np.ndarray) -> np.ndarray:
        """One request on the whole (N, 3, H, W) input; OpenVINO writes into a new array."""
        if self.manifest.dynamic:
            return self.request.infer({0: x}, share_inputs=True)[0]
        import openvino as ov

        out = np.empty(self.manifest.outputs[0].shape, np.float32)
        self.request.set_output_tensor(0, ov.Tensor(out, shared_memory=True))
        self.request.infer({0: x}, share_inputs=True, share_outputs=True)
        return out

    def _infer_spread(self, x: np.ndarray) -> np.ndarray:
        """Frame i of (N, 3, H, W) on a free request of the queue; all run at once."""
        n, shape = x.shape[0], self.manifest.outputs[0].shape
        out = np.empty((n, *shape[1:]), np.float32)

        def done(request, i: int) -> None:
            out[i] = request.get_output_tensor(0).data[0]

        self.queue.set_callback(done)
        for i in range(n):
            self.queue.start_async({0: x[i:i + 1]}, userdata=i, share_inputs=True)
        self.queue.wait_all()
        return out

    def close(self) -> None:
        self.queue = self.request = self.compiled = None


def _threads(threads: int | None) -> int | None:
    if threads is not None:
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


def _has_vnni() -> bool | None:
    """AVX512-VNNI or AVX-VNNI in /proc/cpuinfo (None where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return any(f in flags.split() for f in ("avx512_vnni", "avx_vnni"))


def _first_line(exc: Exception) -> str:
    lines = [s for s in str(exc).splitlines() if s.strip()]
    return lines[0] if lines else type_name(exc)
