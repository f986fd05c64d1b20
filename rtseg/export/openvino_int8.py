"""INT8 OpenVINO IR: NNCF post-training quantisation, with accuracy control where labelled.

Calibrated on up to CALIB_MAX images of --calib DIR with the MIXED preset (asymmetric
activations: MobileNetV3's hard-swish outputs are not centred on 0) and full bias
correction, the setting that lost the least mIoU against FP32
(benchmarks/results/cpu-design-timings.md).

With --calib-labels, `nncf.quantize_with_accuracy_control` quantises the whole graph, scores
it against the labels and, while it loses more than CONTROL_DROP mIoU points against the FP32
IR, returns the quantised operations that cost the most to float, one at a time. It scores
up to CONTROL_MAX labelled images that follow the parity gate's (the gate scores the first
--frames images, so it stays an independent check) and aims at half the gate's 1-point limit.
"""

from __future__ import annotations

import logging

import numpy as np

from rtseg.errors import RtsegError, type_name
from rtseg.export.target import ExportTarget

log = logging.getLogger(__name__)
CALIB_MAX = 300  # NNCF's default subset size
CONTROL_MAX = 64  # labelled images the accuracy control scores
CONTROL_MIN = 8  # fewer than this after the gate's frames: plain quantisation
CONTROL_DROP = 0.5  # mIoU points the accuracy control allows (the gate: 1.0)


def quantize(ir, target: ExportTarget):
    """The INT8 copy of the OpenVINO model `ir` (input (B, 3, H, W) float32)."""
    try:
        import nncf
    except ImportError:
        raise RtsegError("int8 needs NNCF: pip install nncf") from None
    calibration = nncf.Dataset(calibration_batches(target), _calibration_input)
    common = dict(subset_size=calibration.get_length(), preset=nncf.QuantizationPreset.MIXED,
                  fast_bias_correction=False)
    scored = control_batches(target) if target.calib_labels else []
    try:
        if len(scored) * target.batch < CONTROL_MIN:
            if target.calib_labels:
                log.warning("int8: fewer than %d labelled --calib images after the gate's %d: "
                            "no accuracy control", CONTROL_MIN, target.calib_skip)
            return nncf.quantize(ir, calibration, **common)
        log.info("int8: accuracy control on %d labelled images (at most %.1f mIoU points lost)",
                 len(scored) * target.batch, CONTROL_DROP)
        validate = _validator(max(target.channels, 2), target.ignore_index)
        return nncf.quantize_with_accuracy_control(
            ir, calibration, nncf.Dataset(scored), validate, max_drop=CONTROL_DROP / 100,
            drop_type=nncf.DropType.ABSOLUTE, **common)
    except RtsegError:
        raise
    except Exception as exc:  # NNCF raises many types; name the cause
        raise RtsegError(f"NNCF quantisation failed: {type_name(exc)}: {exc}") from exc


def calibration_batches(target: ExportTarget) -> list[tuple]:
    """The --calib images in groups of the engine's batch, each with the input size and
    normalisation (read lazily by `_calibration_input`)."""
    from rtseg.export.parity import calib_images

    calib, batch = target.calib, target.batch
    if not calib:
        raise RtsegError("--precision int8 needs --calib DIR: a folder of real frames to "
                         "calibrate the quantisation on")
    items = _items(calib_images(calib, CALIB_MAX), target)
    if not items:
        raise RtsegError(f"--calib {calib}: fewer images than one batch ({batch})")
    log.info("int8: calibrating on %d images of %s", len(items) * batch, calib)
    return items


def control_batches(target: ExportTarget) -> list[tuple]:
    """Up to CONTROL_MAX labelled --calib images after the gate's, in groups of the batch:
    (calibration item, (H, W) labels)."""
    from rtseg.export.parity import calib_images, read_label

    skip = target.calib_skip
    items = _items(calib_images(target.calib, skip + CONTROL_MAX)[skip:], target)
    return [(item, tuple(read_label(target.calib_labels, p)[0] for p in item[0]))
            for item in items]


def _items(paths: list, target: ExportTarget) -> list[tuple]:
    """`paths` in whole groups of the engine's batch (a short tail dropped), each with the
    input size and normalisation: (paths, size, mean, std), read by `_calibration_input`."""
    batch = target.batch
    return [(tuple(paths[i:i + batch]), target.size, target.mean, target.std)
            for i in range(0, len(paths) // batch * batch, batch)]


def _validator(num_classes: int, ignore_index: int):
    """validation_fn(compiled model, items) -> (mIoU in [0, 1], None), scored as `rtseg
    eval` scores (logits resized to each label's size)."""
    import torch

    from rtseg.metrics import ConfusionMatrix
    from rtseg.models import logits_to_classes, resize_logits

    def validate(compiled, items) -> tuple[float, None]:
        matrix = ConfusionMatrix(num_classes, ignore_index)
        for item, labels in items:
            logits = torch.from_numpy(np.asarray(compiled(_calibration_input(item))[0]))
            for i, label in enumerate(labels):
                matrix.update(logits_to_classes(resize_logits(logits[i:i + 1], label.shape))[0],
                              label)
        return float(np.nan_to_num(matrix.compute().miou)), None

    return validate


def _calibration_input(item):
    """(paths, size, mean, std) -> (B, 3, H, W) float32 array, as the pipeline feeds it."""
    import cv2

    from rtseg.backends.preprocess import Preprocessor

    paths, size, mean, std = item
    prepare = Preprocessor(size, mean, std)
    frames = []
    for p in paths:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            raise RtsegError(f"--calib image {p} could not be decoded")
        frames.append(prepare(image).numpy())
    return np.concatenate(frames)
