"""INT8 with accuracy control: NNCF returns the costly operations to float until the mIoU
lost against the labels is within budget (rtseg.export.openvino_int8)."""

from __future__ import annotations

import logging
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

ov = pytest.importorskip("openvino")
pytest.importorskip("nncf")

from rtseg.backends.preprocess import Preprocessor  # noqa: E402
from rtseg.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from rtseg.data.synthetic import SceneStream  # noqa: E402
from rtseg.export import openvino_int8  # noqa: E402
from rtseg.export.target import ExportTarget  # noqa: E402

SIZE = (32, 48)  # the network's input; frames and labels are 64x96


def small_net() -> nn.Module:
    """(N, 3, H, W) -> (N, 3, H, W): three convolutions, three quantisable operations."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()


@pytest.fixture(scope="module")
def dark_calibration(tmp_path_factory):
    """(net, target): 10 frames of a generated drive labelled with the float net's own
    classes; the first two (the parity gate's) are 16x darker, and are all the quantisation
    is calibrated on, so the INT8 ranges clip the other frames' activations."""
    root = tmp_path_factory.mktemp("int8")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    net, drive = small_net(), SceneStream(seed=3, height=64, width=96)
    prepare = Preprocessor(SIZE, IMAGENET_MEAN, IMAGENET_STD)
    for i in range(10):
        frame = np.ascontiguousarray(drive.next()[0][:, :, ::-1]) // (16 if i < 2 else 1)
        with torch.no_grad():
            label = net(prepare(frame)).argmax(1)[0].numpy().astype(np.uint8)
        label = cv2.resize(label, (96, 64), interpolation=cv2.INTER_NEAREST)
        assert cv2.imwrite(str(root / "images" / f"f{i}.png"), frame)
        assert cv2.imwrite(str(root / "labels" / f"f{i}.png"), label)
    target = ExportTarget(path=root / "net.xml", batch=1, size=SIZE, channels=3,
                          precision="int8", calib=str(root / "images"),
                          calib_labels=str(root / "labels"), calib_skip=2)
    return net, target


def fake_quantize_ops(model) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def test_control_scores_the_labelled_frames_after_the_gates(dark_calibration):
    _, target = dark_calibration
    items = openvino_int8.control_batches(target)
    assert [paths[0].name for (paths, *_), _ in items] == [f"f{i}.png" for i in range(2, 10)]
    assert all(labels[0].shape == (64, 96) for _, labels in items)


def test_accuracy_control_returns_the_costly_operations_to_float(dark_calibration,
                                                                 monkeypatch):
    net, target = dark_calibration
    monkeypatch.setattr(openvino_int8, "CALIB_MAX", 2)  # calibrate on the dark frames only
    ir = ov.convert_model(net, example_input=torch.zeros(1, 3, *SIZE))
    score = openvino_int8._validator(3, 255)
    items, core = openvino_int8.control_batches(target), ov.Core()
    plain_target = replace(target, calib_labels=None)
    plain = openvino_int8.quantize(ir.clone(), plain_target)
    controlled = openvino_int8.quantize(ir.clone(), target)
    float_miou, plain_miou, controlled_miou = (
        score(core.compile_model(model, "CPU"), items)[0] for model in (ir, plain, controlled))
    budget = openvino_int8.CONTROL_DROP / 100
    assert float_miou - plain_miou > budget  # the clipped ranges really cost accuracy
    assert float_miou - controlled_miou <= budget + 1e-6
    assert fake_quantize_ops(controlled) < fake_quantize_ops(plain) == 3


def test_too_few_labelled_frames_quantise_without_control(dark_calibration, caplog):
    net, target = dark_calibration
    ir = ov.convert_model(net, example_input=torch.zeros(1, 3, *SIZE))
    few = replace(target, calib_skip=9)  # one labelled frame left
    with caplog.at_level(logging.WARNING, logger="rtseg.export.openvino_int8"):
        model = openvino_int8.quantize(ir, few)
    assert fake_quantize_ops(model) == 3
    assert "no accuracy control" in caplog.text and "gate's 9" in caplog.text

