"""Checkpoint model -> ONNX (opset 18), checked with onnx.checker.

FP16 means an FP16 graph (exported from a half model), as TensorRT 11's strongly-typed
networks require; FP32 otherwise. Dynamic export makes batch, height and width symbolic.
"""

from __future__ import annotations

import torch
from torch import nn

from rtseg.errors import RtsegError, type_name
from rtseg.export.target import ExportTarget
from rtseg.manifest import INPUT, OUTPUT, TensorSpec

OPSET = 18


def export_onnx(model: nn.Module, target: ExportTarget) -> tuple[tuple[TensorSpec, ...], ...]:
    """Write `model` ((N,3,H,W) -> (N,C,H,W)) to `target.path`; returns (inputs, outputs) specs.

    target.symbolic_batch: only the batch axis symbolic (the specs still say `batch`), so
    that a runtime can reshape the graph to another batch (OpenVINO's one frame per request).
    """
    import onnx

    model, example = target.prepare(model)
    path, shapes = target.path, None
    if target.dynamic:
        dims = (torch.export.Dim("batch", min=1, max=64), torch.export.Dim.DYNAMIC,
                torch.export.Dim.DYNAMIC)
        shapes = {"x": {0: dims[0], 2: dims[1], 3: dims[2]}}
    elif target.symbolic_batch:
        shapes = {"x": {0: torch.export.Dim("batch", min=1, max=64)}}
    try:
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT],
                          output_names=[OUTPUT], opset_version=OPSET, dynamo=True,
                          external_data=False, dynamic_shapes=shapes)
    except Exception as exc:  # the exporter raises many types; name the model and cause
        raise RtsegError(f"ONNX export failed: {type_name(exc)}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    onnx.checker.check_model(str(path))
    return target.specs()
