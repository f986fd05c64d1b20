"""Checkpoint model -> OpenVINO IR (NAME.xml + NAME.bin) for the CPU plugin.

Converted with `ov.convert_model` from the ONNX graph `onnx_export` writes: the checked
export the ONNX Runtime engines use, with its dynamic shapes; converting the torch module
directly would go through the deprecated TorchScript tracer, slower for the same IR. The
IR keeps FP32 weights (`compress_to_fp16=False`), so FP32 inference is exact. A static
batch B > 1 is exported with a symbolic batch and reshaped to B, so that the backend can
reshape it to one frame per infer request (a graph exported at batch B has B baked into its
resize). Precisions:
- fp32: inference in f32.
- bf16: the same IR, inferred with INFERENCE_PRECISION_HINT bf16 (the CPU plugin casts
  weights and activations when it compiles); needs a CPU with BF16 (AVX512-BF16, AMX).
- int8: NNCF post-training quantisation calibrated on --calib DIR (rtseg.export.openvino_int8;
  with --calib-labels, accuracy control keeps the layers that cost the most mIoU in float);
  layers left in float infer in f32.
- auto: bf16 where the CPU has BF16, else fp32.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from rtseg.backends.openvino_backend import openvino_machine, openvino_version, ov_core
from rtseg.errors import RtsegError
from rtseg.export.onnx_export import export_onnx
from rtseg.export.target import ExportTarget

PRECISIONS = ("fp32", "bf16", "int8")


def resolve_precision(precision: str | None) -> str:
    """auto / None -> bf16 where this CPU has BF16, else fp32; fp32, bf16, int8 as given."""
    if precision in (None, "auto"):
        return "bf16" if openvino_machine()["bf16"] else "fp32"
    if precision not in PRECISIONS:
        raise RtsegError(f"OpenVINO engines are fp32, bf16, int8 or auto, not {precision!r}")
    machine = openvino_machine()
    if precision == "bf16" and not machine["bf16"]:  # refused before the build, not after
        caps = ", ".join(machine["optimization_capabilities"])
        raise RtsegError(f"--precision bf16 needs a CPU with BF16 (AVX512-BF16 or AMX); this "
                         f"one ({machine['name']}) has {caps}: "
                         "use --precision auto or fp32 here, or compile on the robot's CPU")
    return precision


def openvino_metadata(meta: dict, precision: str) -> dict:
    """engine_metadata(device) plus OpenVINO's version, the CPU's name and capabilities
    (BF16, VNNI) and the inference precision hint the backend compiles with."""
    versions = {**meta["versions"], "openvino": openvino_version(),
                "nncf": _nncf_version() if precision == "int8" else None}
    hint = "bf16" if precision == "bf16" else "f32"
    return {"versions": versions, "device": openvino_machine(),
            "runtime": {"inference_precision_hint": hint}}


def export_openvino(model: nn.Module, target: ExportTarget) -> tuple:
    """Write the IR of `model` ((N,3,H,W) -> (N,C,H,W)) to `target.path` (.xml, its .bin
    beside it); returns (inputs, outputs) specs. The graph is FP32 whatever the precision
    (bf16 is a hint to the runtime, int8 a quantised copy)."""
    ov_core()  # a missing OpenVINO is a one-line error naming the package
    import openvino as ov

    path, batch = target.path, target.batch
    onnx_path = path.with_name(f"{path.stem}.onnx")
    try:
        specs = export_onnx(model, replace(target, path=onnx_path, precision="fp32",
                                           device="cpu", symbolic_batch=batch > 1))
        try:
            ir = ov.convert_model(str(onnx_path))
        except Exception as exc:  # the converter raises its own types; name the cause
            raise RtsegError(f"OpenVINO could not convert the ONNX graph: {exc}") from exc
        if batch > 1 and not target.dynamic:  # static B; the backend reshapes it to 1
            ir.reshape([batch, 3, *target.size])
    finally:
        onnx_path.unlink(missing_ok=True)
    if target.precision == "int8":
        from rtseg.export.openvino_int8 import quantize

        ir = quantize(ir, target)
    ov.save_model(ir, str(path), compress_to_fp16=False)
    return specs


def _nncf_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nncf")
    except PackageNotFoundError:
        return None
