"""Weight files: round trip, provenance, and every kind of bad file."""

from __future__ import annotations


import pytest
import torch

from icnet_deploy.errors import ModelError
from icnet_deploy.model import ICNet, ICNetConfig
from icnet_deploy.model.weights import load_model, read_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(3)
    model = ICNet().eval()
    path = tmp_path_factory.mktemp("w") / "m.safetensors"
    save_checkpoint(model, path, {"note": "test"})
    return model, path


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = load_model(path)
    assert not loaded.training
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.checkpoint_info["provenance"] == {"note": "test"}
    assert len(loaded.checkpoint_info["sha256"]) == 64


def test_config_travels_in_metadata(tmp_path):
    model = ICNet(ICNetConfig(num_classes=5))
    path = tmp_path / "five.safetensors"
    save_checkpoint(model, path)
    assert load_model(path).config.num_classes == 5


def test_fp16_storage_loads_as_fp32(tmp_path, saved):
    model, _ = saved
    path = tmp_path / "half.safetensors"
    save_checkpoint(model, path, half=True)
    loaded = load_model(path)
    assert loaded.classifier.weight.dtype == torch.float32
    assert path.stat().st_size < 0.6 * saved[1].stat().st_size


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path, saved):
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(saved[1].read_bytes()[:5000])
    with pytest.raises(ModelError, match="cut.safetensors.*truncated or corrupt"):
        load_model(bad)


def test_garbage_file(tmp_path):
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="junk.safetensors"):
        load_model(bad)


def test_wrong_class_count(tmp_path):
    path = tmp_path / "seven.safetensors"
    save_checkpoint(ICNet(ICNetConfig(num_classes=7)), path)
    with pytest.raises(ModelError, match="7 classes but the config expects 19"):
        load_model(path, ICNetConfig())


def test_wrong_architecture(tmp_path):
    path = tmp_path / "full.safetensors"
    save_checkpoint(ICNet(ICNetConfig(name="icnet_r50", width=1.0)), path)
    with pytest.raises(ModelError, match="shape"):
        load_model(path, "icnet_r50_half")


def test_pth_state_dict_loads_with_weights_only(tmp_path, saved):
    model, _ = saved
    path = tmp_path / "m.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    loaded = load_model(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(ModelError, match="weights_only=True"):
        load_model(path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"abc")
    with pytest.raises(ModelError, match="unknown checkpoint format"):
        read_checkpoint(path)


def test_no_checkpoint_warns_and_gives_random_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ICNET_DEPLOY_MODELS", str(tmp_path))
    with pytest.warns(UserWarning, match="random weights"):
        model = load_model()
    assert model.checkpoint_info["provenance"] == {"weights": "random"}
