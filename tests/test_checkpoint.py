import shutil

import pytest
import torch

from rtseg.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from rtseg.errors import RtsegError
from rtseg.models import build_model

META = CheckpointMeta(model="lraspp_mobilenet_v3", classes=("road", "sky", "car"),
                      drivable=("road",), input_size=(64, 96))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("lraspp_mobilenet_v3", 3).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, META)
    return model, path


def test_round_trip_gives_the_same_outputs(saved):
    model, path = saved
    ckpt = load_checkpoint(path)
    assert ckpt.meta == META
    assert len(ckpt.sha256) == 64
    assert ckpt.meta.drivable_ids == (0,)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(ckpt.build()(x), model(x), atol=1e-6)


def test_loads_with_weights_only(saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "rtseg-checkpoint"
    assert payload["meta"]["classes"] == ["road", "sky", "car"]


def test_half_storage_halves_the_file(tmp_path, saved):
    model, full = saved
    half = save_checkpoint(tmp_path / "h.pt", model, META, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(load_checkpoint(half).build()(x), model(x), atol=5e-2)


def test_truncated_file_is_a_clear_error(tmp_path, saved):
    _, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RtsegError, match="cut.pt.*(truncated|damaged)"):
        load_checkpoint(cut)


def test_random_bytes_and_missing_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(RtsegError, match="not an rtseg checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(RtsegError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(build_model("unet", 2).state_dict(), path)
    with pytest.raises(RtsegError, match="not an rtseg checkpoint"):
        load_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "rtseg-checkpoint", "obj": shutil.copy}, path)
    with pytest.raises(RtsegError, match="could not be loaded"):
        load_checkpoint(path)


def test_unknown_model_name_is_named(tmp_path, saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["meta"]["model"] = "mystery_net"
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(RtsegError, match="unknown model 'mystery_net'"):
        load_checkpoint(bad)


def test_weights_that_do_not_fit_are_named(tmp_path, saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["meta"]["classes"] = ["a", "b", "c", "d", "e"]
    payload["meta"]["drivable"] = ["a"]
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(RtsegError, match="do not fit"):
        load_checkpoint(bad).build()


def test_drivable_must_be_a_class(tmp_path, saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["meta"]["drivable"] = ["runway"]
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(RtsegError, match="runway"):
        load_checkpoint(bad)
