"""The Python API (rtseg.Segmenter) against the node, rtseg predict and real engines."""

from __future__ import annotations

import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from test_node import run_and_collect, write_video  # noqa: I001  (tests/ is on sys.path)

from rtseg import Segmenter
from rtseg.config import RunConfig
from rtseg.data.synthetic import SceneStream
from rtseg.errors import RtsegError
from rtseg.predict import predict_folder


@pytest.fixture(scope="module")
def demo():
    with Segmenter("demo", device="cpu") as seg:
        yield seg


def scenes(count: int, size=(360, 640), seed: int = 3) -> list[np.ndarray]:
    stream = SceneStream(seed=seed, height=size[0], width=size[1])
    return [cv2.cvtColor(stream.next()[0], cv2.COLOR_RGB2BGR) for _ in range(count)]


def read_video(path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while (got := capture.read())[0]:
        frames.append(got[1])
    capture.release()
    return frames


@pytest.mark.slow
def test_masks_are_the_nodes_masks(tmp_path, demo):
    video = tmp_path / "drive.avi"
    write_video(video, 8)
    cfg = RunConfig(source=str(video), model="demo", device="cpu", status_every=0, hwm=100)
    received, _ = run_and_collect(cfg, ["drive/drivable", "drive/classes"])
    frames = read_video(video)
    assert len(frames) == 8 and len(received["drive/classes"]) == 8
    for (header, classes), (_, drivable) in zip(received["drive/classes"],
                                                received["drive/drivable"]):
        masks = demo(frames[header.seq])
        assert np.array_equal(masks.classes, classes)  # the node's masks, to the pixel
        assert np.array_equal(masks.drivable, drivable)
    assert tuple(received["drive/classes"][0][0].classes) == demo.classes


def test_logits_upsampling_gives_rtseg_predicts_masks(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    frames = scenes(3, size=(300, 420))
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i}.png"), frame)
    predict_folder("demo", folder, tmp_path / "out", device="cpu")
    with Segmenter("demo", device="cpu", upsample="logits") as seg:
        for i, frame in enumerate(frames):
            written = cv2.imread(str(tmp_path / "out" / f"f{i}.png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(seg(frame).classes, written)


def test_masks_and_metadata(demo):
    frame = scenes(1, size=(200, 300))[0]
    masks = demo(frame)
    assert masks.classes.shape == masks.drivable.shape == (200, 300)
    assert masks.classes.dtype == masks.drivable.dtype == np.uint8
    assert masks.classes.max() < len(demo.classes) and set(np.unique(masks.drivable)) <= {0, 1}
    drivable_ids = [demo.classes.index(name) for name in demo.drivable_classes]
    assert np.array_equal(masks.drivable, np.isin(masks.classes, drivable_ids))
    assert 0.05 < masks.drivable.mean() < 0.95  # a road scene: the demo finds its road
    assert {"wait", "pre", "infer", "post"} <= set(masks.timings_ms)
    assert demo.input_size == tuple(demo.describe()["input_size"])
    picture = demo.overlay(frame, masks)
    assert picture.shape == frame.shape and picture.dtype == np.uint8
    assert np.abs(picture.astype(int) - frame).mean() > 5  # the masks are drawn on it


def test_the_warm_up_changes_no_mask_and_is_not_counted():
    frame = scenes(1, size=(200, 300), seed=8)[0]
    with Segmenter("demo", device="cpu", warmup=False) as cold, \
            Segmenter("demo", device="cpu") as warm:
        assert cold.calls == warm.calls == 0
        assert np.array_equal(cold(frame).classes, warm(frame).classes)
        assert cold.calls == warm.calls == 1


def test_a_batch_of_sizes_gives_each_frame_its_own_masks(demo):
    frames = scenes(2, size=(240, 320)) + scenes(1, size=(150, 500), seed=9)
    batch = demo.segment(frames)
    assert [m.classes.shape for m in batch] == [(240, 320), (240, 320), (150, 500)]
    for frame, masks in zip(frames, batch):
        assert np.array_equal(masks.classes, demo(frame).classes)


def test_views_are_segmented_as_their_copies(demo):
    frame = scenes(1, size=(200, 300), seed=4)[0]
    for view in (frame[:, ::-1], frame[20:180, 30:290], frame[..., ::-1], frame[::2, ::2]):
        assert np.array_equal(demo(view).classes, demo(np.ascontiguousarray(view)).classes)


def test_threads_share_one_segmenter(demo):
    frames = scenes(4, size=(180, 240), seed=5)
    expected = [demo(f).classes for f in frames]
    results: dict = {}

    def work(k: int) -> None:
        results[k] = [demo(f).classes for f in frames]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [0, 1, 2]
    assert all(np.array_equal(a, b) for got in results.values() for a, b in zip(got, expected))


def test_a_compiled_engine_runs_as_given(compiled_engine, tiny_checkpoint):
    manifest = compiled_engine("onnx").path
    frames = scenes(2, size=(128, 192))
    with Segmenter(str(manifest), device="cpu") as engine, \
            Segmenter(str(tiny_checkpoint), device="cpu") as eager:
        assert engine.model == str(manifest) and engine.classes == eager.classes
        for frame in frames:
            agree = (engine(frame).classes == eager(frame).classes).mean()
            assert agree >= 0.99, agree  # the parity gate's criterion


@pytest.mark.slow
def test_engine_auto_compiles_once_into_the_cache(tmp_path, tiny_checkpoint):
    cache = tmp_path / "cache"
    frame = scenes(1, size=(128, 192))[0]
    with Segmenter(str(tiny_checkpoint), engine="auto", device="cpu",
                   engine_cache=str(cache)) as first:
        assert first.model.endswith(".json") and first.model.startswith(str(cache))
        masks = first(frame)
    built = sorted(p.name for p in cache.iterdir())
    with Segmenter(str(tiny_checkpoint), engine="auto", device="cpu",
                   engine_cache=str(cache)) as again:  # (its parity gate: test_export)
        assert again.model == first.model and sorted(p.name for p in cache.iterdir()) == built
        assert np.array_equal(again(frame).classes, masks.classes)


@pytest.mark.parametrize("frame, says", [
    (np.zeros((40, 60), np.uint8), "grey image.*COLOR_GRAY2BGR"),
    (np.zeros((40, 60, 4), np.uint8), "four channels.*COLOR_BGRA2BGR"),
    (np.zeros((40, 60, 3), np.float32), "expected uint8"),
    (np.zeros((0, 60, 3), np.uint8), r"shape \(0, 60, 3\)"),
    ([[0, 0, 0]], "not a numpy array"),
])
def test_a_bad_frame_is_a_clear_error(demo, frame, says):
    with pytest.raises(RtsegError, match=says):
        demo(frame)
    with pytest.raises(RtsegError, match="frame 1 "):
        demo.segment([np.zeros((40, 60, 3), np.uint8), frame])
    with pytest.raises(RtsegError, match="at least one frame"):
        demo.segment([])


@pytest.mark.parametrize("kw, says", [
    ({"model": "nope.pt"}, "nope.pt"),
    ({"engine": "bogus"}, "unknown engine 'bogus'.*torch, auto"),
    ({"upsample": "bilinear"}, "unknown upsample 'bilinear'"),
    ({"mask_size": "big"}, "unknown --mask-size 'big'"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
])
def test_bad_arguments_are_clear_errors(kw, says):
    with pytest.raises(RtsegError, match=says):
        Segmenter(**{"model": "demo", "device": "cpu", **kw})


def test_importing_rtseg_stays_light():
    code = ("import sys, rtseg; assert 'torch' not in sys.modules; "
            "from rtseg import Segmenter; print(Segmenter.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rtseg.segmenter"


@pytest.mark.gpu
def test_on_cuda_the_masks_are_the_cpus_and_outlive_the_next_calls():
    a, b = scenes(2, size=(360, 640), seed=11)
    with Segmenter("demo", device="cuda") as gpu, \
            Segmenter("demo", device="cpu", upsample="logits") as cpu:
        first = gpu(a)
        for _ in range(4):  # more calls than the CUDA pipeline has buffer slots (3)
            gpu(b)
        again = gpu(a)
        assert np.array_equal(first.classes, again.classes)  # not a view of a reused buffer
        assert np.array_equal(first.drivable, again.drivable)
        agree = (first.classes == cpu(a).classes).mean()  # GPU vs CPU float sums
        assert agree >= 0.99, agree
