"""The CUDA path: pinned buffers, streams, GPU pre/post, CUDA graphs. Skipped without CUDA."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def frames(count, height=360, width=640, seed=3):
    from rtseg.data.synthetic import SceneStream

    stream = SceneStream(seed=seed, height=height, width=width)
    return [np.ascontiguousarray(stream.next()[0][:, :, ::-1]) for _ in range(count)]


@pytest.fixture(scope="module")
def demo_cuda():
    from rtseg.backends import load_backend

    return load_backend("demo", "cuda")


@pytest.mark.parametrize("graphs", [False, True])
def test_cuda_pipeline_matches_the_cpu_pipeline(demo_cuda, graphs):
    from rtseg.backends import load_backend
    from rtseg.stream.cuda_pipeline import CudaPipeline
    from rtseg.stream.pipeline import Pipeline

    cpu = Pipeline(load_backend("demo", "cpu"))
    gpu = CudaPipeline(demo_cuda, graphs=graphs)
    for image in frames(6):
        a, b = cpu(image), gpu(image)
        assert b.classes.shape == b.drivable.shape == image.shape[:2]
        assert (a.classes == b.classes).mean() > 0.99
        assert (a.drivable == b.drivable).mean() > 0.99
        assert {"h2d", "infer", "d2h"} <= set(b.timings_ms)


def test_graphs_replay_gives_the_same_masks_as_eager(demo_cuda):
    from rtseg.stream.cuda_pipeline import CudaPipeline

    eager, graphed = CudaPipeline(demo_cuda, graphs=False), CudaPipeline(demo_cuda)
    for image in frames(4, seed=8):
        a, b = eager(image), graphed(image)
        assert (a.classes == b.classes).mean() > 0.999
    assert graphed._graph is not None  # a torch backend with static shapes is captured
    assert graphed.graph_state == "captured" and eager.graph_state == "off"


def test_several_batches_in_flight_keep_their_own_masks(demo_cuda):
    from rtseg.stream.cuda_pipeline import CudaPipeline

    pipe = CudaPipeline(demo_cuda, slots=3)
    images = frames(3, seed=11)
    expected = [pipe(image).classes for image in images]
    jobs = [pipe.submit([image]) for image in images]  # three in flight before any result
    for job, want in zip(jobs, expected):
        np.testing.assert_array_equal(job.result()[0].classes, want)
        job.release()


def test_two_cameras_of_different_sizes_in_one_batch(demo_cuda):
    from rtseg.stream.cuda_pipeline import CudaPipeline

    pipe = CudaPipeline(demo_cuda)
    batch = [frames(1)[0], frames(1, 240, 320, seed=5)[0]]
    job = pipe.submit(batch)
    masks = job.result()
    assert [m.classes.shape for m in masks] == [(360, 640), (240, 320)]
    job.release()


@pytest.mark.parametrize("graphs", [False, True])
def test_no_device_allocation_per_frame(demo_cuda, graphs):
    """After warm-up, frames reuse every buffer: no new cudaMalloc segment, and with a
    CUDA graph not even a caching-allocator allocation."""
    import torch

    from rtseg.stream.cuda_pipeline import CudaPipeline

    pipe = CudaPipeline(demo_cuda, graphs=graphs)
    images = frames(4)
    for image in images * 2:
        pipe(image)
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()
    for image in images * 10:
        job = pipe.submit([image])
        job.result()
        job.release()
    after = torch.cuda.memory_stats()
    assert after["segment.all.allocated"] == before["segment.all.allocated"]
    if graphs:
        assert after["allocation.all.allocated"] == before["allocation.all.allocated"]


def test_memory_frames_are_pinned_for_cuda():
    import torch

    from rtseg.stream.memory import memory_frames

    frame = memory_frames((72, 128), count=1, pinned=True)[0]
    assert torch.from_numpy(frame).is_pinned()


def test_node_batches_two_demo_cameras_on_cuda():
    from conftest import running_node

    from rtseg.config import RunConfig

    cfg = RunConfig(source=("demo", "demo"), name=("a", "b"), device="cuda",
                    max_frames=40, status_every=0)
    seen = {"a/drivable": [], "b/drivable": []}
    with running_node(cfg, list(seen)) as node:
        while min(map(len, seen.values())) < 3:
            header, mask = node.sub.recv(timeout_ms=30000)
            assert mask.shape == (360, 640)
            seen[header.topic].append(header.seq)
        assert node.report.published == 40
    for seqs in seen.values():
        assert seqs == sorted(seqs)


def test_bench_on_cuda_reports_the_gpu_targets(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rtseg", "bench", "--device", "cuda", "--engine", "torch",
         "--seconds", "2", "--warmup", "1", "--json", "--engine-cache", str(tmp_path)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["frame_size"] == [1080, 1920]
    assert {"h2d", "infer", "d2h", "publish"} <= set(result["pipeline"]["stages_ms"])
    assert {"engine_fps", "pipeline_p50_ms", "pipeline_vs_baseline"} <= set(result["targets"])
    # eager torch with static shapes: the engine and the node's pre + infer + post are
    # each one CUDA graph replay
    assert result["engine"]["cuda_graph"] == "captured"
    assert result["pipeline"]["cuda_graph"] == "captured"
