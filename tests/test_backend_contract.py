"""One contract, every backend (like segmentation_models_pytorch's BaseModelTester).

Each subclass only says how to build its backend from the tiny checkpoint; the tests are
the contract the pipeline, the node and the bench rely on, so none of them needs to know
which class it runs: `spec`, `device`, `dtype`, `static_batch`, `graph_capturable`, a call
`(N, 3, H, W) -> (N, C, H, W)` float32 logits on `device` with the masks eager computes,
`classes()` (N, H, W) uint8 = their argmax, `fused_argmax`, and `close()`. GPU and
TensorRT subclasses are marked and skip where they cannot run.
"""

from __future__ import annotations

import pytest
import torch

from rtseg.backends import Backend, load_backend


class BackendContract:
    """Subclasses set `device` and implement `make(compiled_engine, checkpoint)`
    (`compiled_engine`: the conftest fixture, engines of the checkpoint shared per session)."""

    device = "cpu"

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, compiled_engine, tiny_checkpoint):
        backend = cls().make(compiled_engine, tiny_checkpoint)
        yield backend
        backend.close()

    def make(self, compiled_engine, checkpoint) -> Backend:
        raise NotImplementedError

    def batch(self, backend: Backend) -> torch.Tensor:
        h, w = backend.spec.input_size
        n = backend.static_batch or 2
        return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(0)).to(
            backend.device, backend.dtype)

    def test_declares_what_callers_need(self, backend):
        assert isinstance(backend, Backend)
        assert isinstance(backend.device, torch.device)
        assert backend.device.type == torch.device(self.device).type
        assert isinstance(backend.dtype, torch.dtype)
        assert backend.static_batch is None or backend.static_batch >= 1
        assert isinstance(type(backend).graph_capturable, bool)
        spec = backend.spec
        assert len(spec.classes) >= 2 and all(h % 32 == 0 for h in spec.input_size)
        assert len(spec.mean) == len(spec.std) == 3 and set(spec.drivable_ids) <= set(
            range(len(spec.classes)))

    def test_call_gives_logits_of_every_class_at_input_size(self, backend):
        x = self.batch(backend)
        logits = backend(x)
        assert logits.shape == (x.shape[0], len(backend.spec.classes), *x.shape[2:])
        assert logits.dtype == torch.float32 and logits.device.type == backend.device.type
        assert torch.isfinite(logits).all()

    def test_masks_match_eager(self, backend, tiny_checkpoint):
        eager = load_backend(str(tiny_checkpoint), self.device)
        x = self.batch(backend)
        ours, theirs = backend(x).argmax(1), eager(x.float()).argmax(1)
        agreement = (ours == theirs).float().mean().item()
        assert agreement >= (0.97 if backend.dtype == torch.float16 else 0.99), agreement


    def test_classes_are_the_argmax_of_the_logits(self, backend):
        assert isinstance(type(backend).fused_argmax, bool)
        x = self.batch(backend)
        classes, logits = backend.classes(x), backend(x)
        assert classes.shape == (x.shape[0], *x.shape[2:]) and classes.dtype == torch.uint8
        same = (classes.long() == logits.argmax(1)).float().mean().item()
        assert same >= 0.99, same

    def test_frames_in_only_where_declared(self, backend):
        assert isinstance(type(backend).fused_preprocess, bool)
        if type(backend).fused_preprocess:
            return  # OpenVINO: tests/test_openvino.py compares them with host normalisation
        h, w = backend.spec.input_size
        with pytest.raises(NotImplementedError, match="normalised batches only"):
            backend.frames_to_classes(torch.zeros(1, h, w, 3, dtype=torch.uint8))


class TestTorch(BackendContract):
    def make(self, compiled_engine, checkpoint):
        return load_backend(str(checkpoint), "cpu")

    def test_input_size_is_a_constructor_argument(self, tiny_checkpoint):
        from rtseg.backends.torch_backend import TorchBackend
        from rtseg.checkpoint import load_checkpoint

        backend = TorchBackend(load_checkpoint(tiny_checkpoint), torch.device("cpu"),
                               input_size=(96, 128))
        assert backend.spec.input_size == (96, 128) and backend.graph_capturable


class TestOnnxRuntime(BackendContract):
    def make(self, compiled_engine, checkpoint):
        return load_backend(str(compiled_engine("onnx").path), "cpu")


class TestOpenVINO(BackendContract):
    def make(self, compiled_engine, checkpoint):
        pytest.importorskip("openvino")
        return load_backend(str(compiled_engine("openvino",
                                     precision="fp32").path), "cpu")


@pytest.mark.slow
class TestAotInductor(BackendContract):
    def make(self, compiled_engine, checkpoint):
        return load_backend(str(compiled_engine("aoti").path), "cpu")


class CudaContract(BackendContract):
    """The CUDA backends also promise: `graph_capturable` ones are captured by the node's
    CudaPipeline, and its replayed masks are those of the eager pipeline."""

    device = "cuda"

    def test_capturable_backends_are_captured_and_replay_the_eager_masks(self, backend):
        import numpy as np

        from rtseg.stream.cuda_pipeline import CudaPipeline

        if not type(backend).graph_capturable:
            pytest.skip(f"{type(backend).__name__} is not graph-capturable")
        frame = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
        graphed, eager = CudaPipeline(backend), CudaPipeline(backend, graphs=False)
        a, b = graphed(frame), eager(frame)
        assert graphed.graph_state == "captured", graphed.graph_state
        assert "pre" not in a.timings_ms and "pre" in b.timings_ms  # one replay vs stages
        assert (a.classes == b.classes).mean() > 0.999


@pytest.mark.gpu
class TestTorchCuda(CudaContract):
    def make(self, compiled_engine, checkpoint):
        return load_backend(str(checkpoint), "cuda")


@pytest.mark.gpu
class TestAotInductorCudaFp16(CudaContract):
    def make(self, compiled_engine, checkpoint):
        return load_backend(str(compiled_engine("aoti", "cuda",
                                     precision="fp16").path), "cuda")


@pytest.mark.gpu
@pytest.mark.tensorrt
class TestTensorRT(CudaContract):
    def make(self, compiled_engine, checkpoint):
        pytest.importorskip("tensorrt")
        return load_backend(str(compiled_engine("tensorrt", "cuda",
                                     precision="fp16").path), "cuda")


@pytest.mark.gpu
@pytest.mark.tensorrt
class TestTorchTensorRT(CudaContract):
    def make(self, compiled_engine, checkpoint):
        pytest.importorskip("torch_tensorrt")
        return load_backend(str(compiled_engine("torch-tensorrt", "cuda",
                                     precision="fp16").path), "cuda")
