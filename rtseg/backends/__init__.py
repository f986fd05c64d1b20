"""Runtimes behind one small interface; each imports its framework inside itself.

`load_backend(model, device)` takes a checkpoint path or `demo` (eager PyTorch), an engine
manifest (`NAME.json`) or an engine file (`NAME.onnx` / `.engine` / `.pt2` / `.xml`, its
manifest beside it), and returns a Backend whose `spec` tells the pipeline what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rtseg.backends.base import Backend, ModelSpec
from rtseg.errors import RtsegError

ENGINE_SUFFIXES = (".onnx", ".engine", ".pt2", ".xml")


def is_engine(model: str) -> bool:
    """True for a manifest or an engine file; False for a checkpoint path or `demo`."""
    return Path(model).suffix in (".json", *ENGINE_SUFFIXES)


def load_backend(model: str, device: str = "auto",
                 input_size: tuple[int, int] | None = None,
                 drivable: Sequence[str] = ()) -> Backend:
    """A ready backend for a checkpoint, manifest or engine file, on `device`.

    `input_size` (H, W): the size an eager checkpoint is fed at (default its own); an
    engine has the size it was compiled for. `drivable`: class names that make up the
    drivable mask instead of the model's own (`--drivable`; an unknown one is an error
    listing the classes)."""
    backend = _load(model, device, input_size)
    if drivable:
        try:
            backend.spec = backend.spec.with_drivable(drivable)
        except RtsegError:
            backend.close()
            raise
    return backend


def _load(model: str, device: str, input_size: tuple[int, int] | None) -> Backend:
    from rtseg.device import pick_device

    dev = pick_device(device)
    path = Path(model)
    if is_engine(model):
        from rtseg.manifest import engine_path, read_manifest

        manifest_path = path if path.suffix == ".json" else path.with_suffix(".json")
        if not manifest_path.is_file():
            raise RtsegError(f"{path} has no manifest {manifest_path} beside it: engines "
                             "run with the manifest `rtseg compile` wrote")
        manifest = read_manifest(manifest_path)
        return backend_for_manifest(manifest, engine_path(manifest_path, manifest), dev)
    from rtseg.backends.torch_backend import TorchBackend
    from rtseg.checkpoint import load_checkpoint

    return TorchBackend(load_checkpoint(model), dev, input_size=input_size)


def backend_for_manifest(manifest, engine: Path, device) -> Backend:
    """The backend of `manifest.format`, after checking that the engine passed its parity
    gate and fits this machine."""
    if manifest.failed_gate:
        from rtseg.export.parity import describe_failure

        raise RtsegError(f"{engine} failed its parity gate when it was compiled "
                         f"({describe_failure(manifest.parity)}), so its masks are not the "
                         "checkpoint's: compile it again with another --precision (fp32, "
                         "bf16) or other calibration frames, and run what passes")
    check_fits_machine(manifest, device)
    if manifest.format == "onnx":
        from rtseg.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(manifest, engine, device)
    if manifest.format == "aoti":
        from rtseg.backends.aoti_backend import AotiBackend

        return AotiBackend(manifest, engine, device)
    if manifest.format == "openvino":
        from rtseg.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(manifest, engine, device)
    if manifest.format == "tensorrt":
        from rtseg.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(manifest, engine, device)
    from rtseg.backends.torch_tensorrt_backend import TorchTensorRTBackend

    return TorchTensorRTBackend(manifest, engine, device)


def check_fits_machine(manifest, device) -> None:
    """TensorRT, OpenVINO and AOTInductor engines are tied to a library version and a device."""
    built = manifest.device or {}
    if manifest.format == "openvino":
        from rtseg.backends.openvino_backend import check_openvino_fits

        check_openvino_fits(manifest)
    if manifest.format == "tensorrt":
        try:
            import tensorrt
        except ImportError:
            raise RtsegError("this engine needs TensorRT: pip install 'rtseg[tensorrt]'") from None
        want = manifest.versions.get("tensorrt")
        if want != tensorrt.__version__:
            raise RtsegError(f"engine built with TensorRT {want}, this machine has "
                             f"{tensorrt.__version__}: compile it again here")
    if manifest.format != "onnx" and built.get("type") == "cuda":
        if device.type != "cuda":
            raise RtsegError(f"engine built for CUDA ({built.get('name')}), asked to run on "
                             f"{device}: compile it for this device")
        import torch

        have = "{}.{}".format(*torch.cuda.get_device_capability(device))
        if built.get("capability") != have:
            raise RtsegError(f"engine built for compute capability {built.get('capability')} "
                             f"({built.get('name')}), this GPU is {have} "
                             f"({torch.cuda.get_device_name(device)}): compile it again here")
    if manifest.format == "aoti" and built.get("type") == "cpu" and device.type != "cpu":
        raise RtsegError(f"engine built for the CPU, asked to run on {device}: compile it "
                         "with --device cuda")


__all__ = ["Backend", "ModelSpec", "backend_for_manifest", "check_fits_machine", "is_engine",
           "load_backend"]
