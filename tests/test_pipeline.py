"""The host pipeline: batches, static-batch engines, CPU pre/post-processing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from rtseg.backends import load_backend
from rtseg.backends.preprocess import Preprocessor
from rtseg.data.synthetic import SceneStream
from rtseg.metrics import drivable_lut
from rtseg.stream.pipeline import Pipeline, argmax_channels, drivable_mask, resize_classes

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def scenes(count, height=360, width=640, seed=4):
    stream = SceneStream(seed=seed, height=height, width=width)
    return [np.ascontiguousarray(stream.next()[0][:, :, ::-1]) for _ in range(count)]


def test_preprocessor_equals_the_float_formula():
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    x = Preprocessor((40, 56), MEAN, STD)(image)
    rgb = image[:, :, ::-1].astype(np.float64) / 255.0
    expected = ((rgb - MEAN) / STD).transpose(2, 0, 1)[None]
    assert x.shape == (1, 3, 40, 56) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 7, 12])
def test_argmax_channels_equals_numpy_argmax(channels):
    rng = np.random.default_rng(channels)
    logits = rng.standard_normal((channels, 33, 47)).astype(np.float32)
    logits[:, 0, :5] = 1.0  # ties: the first channel wins, as in np.argmax
    got = argmax_channels(logits)
    want = (logits[0] > 0) if channels == 1 else logits.argmax(0)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want.astype(np.uint8))


@pytest.mark.parametrize("ids", [(), (3,), (0, 255), (1, 2, 5), (1, 2, 3, 4, 6), tuple(range(9))])
def test_drivable_mask_equals_the_lookup_table(ids):
    classes = np.random.default_rng(len(ids)).integers(0, 12, (37, 53), dtype=np.uint8)
    classes[0, :4] = 255  # no prediction
    got = drivable_mask(classes, ids)
    assert got.dtype == np.uint8 and got.shape == classes.shape
    np.testing.assert_array_equal(got, drivable_lut(ids)[classes])


@pytest.mark.parametrize("src, dst", [((512, 1024), (1080, 1920)), ((352, 480), (360, 480)),
                                      ((448, 608), (360, 480)), ((64, 96), (64, 200)),
                                      ((37, 53), (101, 29)), ((90, 160), (45, 320)),
                                      ((1, 7), (13, 5))])
def test_resize_classes_equals_opencv_nearest(src, dst):
    """Upsampled, downsampled, one side kept, odd sizes: the pixels of cv2.INTER_NEAREST."""
    classes = np.random.default_rng(sum(src)).integers(0, 255, src, dtype=np.uint8)
    want = cv2.resize(classes, (dst[1], dst[0]), interpolation=cv2.INTER_NEAREST)
    got = resize_classes(classes, dst)
    assert got.shape == dst and got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_a_batch_gives_the_masks_of_single_frames():
    pipeline = Pipeline(load_backend("demo", "cpu"))
    frames = scenes(2) + scenes(1, 240, 320, seed=9)  # two sizes in one batch
    batch = pipeline.submit(frames).result()
    lut = drivable_lut(pipeline.spec.drivable_ids)
    for frame, masks in zip(frames, batch):
        single = pipeline(frame)
        assert masks.classes.shape == frame.shape[:2]
        assert (masks.classes == single.classes).mean() > 0.999
        np.testing.assert_array_equal(masks.drivable, lut[masks.classes])
    assert set(batch[0].timings_ms) == {"pre", "infer", "post"}


def test_cpu_class_upsampling_agrees_with_logit_upsampling():
    """The CPU node's cheap path (argmax, then nearest) against bilinear logits."""
    backend = load_backend("demo", "cpu")
    fine, cheap = Pipeline(backend), Pipeline(backend, upsample="classes")
    for frame in scenes(4):  # 360x640 frames, 192x352 network
        a, b = fine(frame), cheap(frame)
        assert b.classes.shape == frame.shape[:2]
        assert (a.classes == b.classes).mean() > 0.97
        assert (a.drivable == b.drivable).mean() > 0.98


def test_static_batch_engine_runs_larger_batches_in_chunks(tmp_path, tiny_checkpoint):
    from rtseg.config import CompileConfig
    from rtseg.export import compile_checkpoint

    result = compile_checkpoint(CompileConfig(checkpoint=str(tiny_checkpoint), format="onnx",
                                              batch=2, out=str(tmp_path), device="cpu",
                                              frames=2))
    engine = Pipeline(load_backend(str(result.path), "cpu"))
    eager = Pipeline(load_backend(str(tiny_checkpoint), "cpu"))
    frames = scenes(3, 64, 96)
    for got, frame in zip(engine.submit(frames).result(), frames):
        assert (got.classes == eager(frame).classes).mean() > 0.99


class _Recording:
    """The node's real pipeline, each submit and each release written to `events`."""

    def __init__(self, inner, events: list):
        self.inner, self.events, self.spec, self.slots = inner, events, inner.spec, inner.slots

    def submit(self, images):
        self.events.append("submit")
        inflight, events = self.inner.submit(images), self.events

        class Batch:
            result = inflight.result

            def release(self):
                events.append("released")
                inflight.release()

        return Batch()


@pytest.mark.parametrize("overlap", ["off", "on"])
def test_without_overlap_a_batch_is_published_before_the_next_is_submitted(overlap):
    import threading
    from dataclasses import replace

    from rtseg.stream.memory import MemorySource
    from rtseg.stream.node import LoopSettings, serve, wire
    from rtseg.stream.publisher import MaskPublisher

    events: list[str] = []
    with (load_backend("demo", "cpu") as backend,
          MaskPublisher("tcp://127.0.0.1:*") as publisher,
          wire([MemorySource(scenes(3), limit=6)], backend, publisher,
               overlap=overlap) as wiring):
        assert wiring.pipeline.slots == (1 if overlap == "off" else 2)
        recording = replace(wiring, pipeline=_Recording(wiring.pipeline, events))
        stats = serve(recording, LoopSettings(status_every=0), threading.Event())
    assert stats.report()["published"] == 6
    assert sorted(events) == ["released"] * 6 + ["submit"] * 6
    if overlap == "off":
        assert events == ["submit", "released"] * 6

