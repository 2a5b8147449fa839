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


def test_provenance_records_file_names_not_the_paths_of_the_machine(tmp_path):
    """A weight file travels: every path in its provenance (path keys, absolute paths, POSIX or Windows)
    is written as its last component; other values are written as given."""
    model = ICNet(ICNetConfig(num_classes=5))
    path = tmp_path / "p.safetensors"
    given = {"train_config": {"data": "work/synth_e", "out": str(tmp_path / "ckpt" / "icnet.safetensors"),
                              "init": "C:\\runs\\start.safetensors", "crop": (64, 128), "seed": 3},
             "inputs": [{"path": "/home/someone/a.safetensors", "sha256": "ab" * 32}, "~/b.safetensors"],
             "note": "labels of synth_e/train"}
    save_checkpoint(model, path, given)
    written = read_checkpoint(path)[1]["provenance"]
    assert written == {"train_config": {"data": "synth_e", "out": "icnet.safetensors", "init": "start.safetensors",
                                        "crop": [64, 128], "seed": 3},
                       "inputs": [{"path": "a.safetensors", "sha256": "ab" * 32}, "b.safetensors"],
                       "note": "labels of synth_e/train"}
    assert str(tmp_path) not in path.read_bytes()[:4096].decode("latin-1")


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


def test_average_checkpoints_means_the_floats_and_records_its_inputs(saved, tmp_path):
    """The average of two checkpoints is their elementwise mean (weights and BatchNorm statistics),
    integer buffers come from the first, the provenance names both by sha256; refusals exit 2."""
    from typer.testing import CliRunner

    from icnet_deploy.cli import app
    from icnet_deploy.model.weights import average_checkpoints

    _, path_a = saved
    torch.manual_seed(4)
    other = ICNet().eval()
    for buffer in other.buffers():  # distinct BatchNorm statistics, so they are averaged too
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    path_b = tmp_path / "b.safetensors"
    save_checkpoint(other, path_b)
    out = tmp_path / "soup.safetensors"
    provenance = average_checkpoints([path_a, path_b], out)
    a, info_a = read_checkpoint(path_a)
    b, info_b = read_checkpoint(path_b)
    avg, info = read_checkpoint(out)
    floats = [k for k in a if a[k].is_floating_point()]
    assert any("running_var" in k for k in floats)
    for k in floats:
        torch.testing.assert_close(avg[k], (a[k] + b[k]) / 2)
    for k in (k for k in a if not a[k].is_floating_point()):
        assert torch.equal(avg[k], a[k])
    assert info["provenance"] == provenance
    assert [p["sha256"] for p in provenance["averaged_from"]] == [info_a["sha256"], info_b["sha256"]]
    assert [p["path"] for p in provenance["averaged_from"]] == ["m.safetensors", "b.safetensors"]  # names, not paths
    load_model(out)  # loads as a normal checkpoint

    cli = CliRunner()
    result = cli.invoke(app, ["average", str(path_a), "--out", str(tmp_path / "one.safetensors")])
    assert result.exit_code == 2 and "at least two" in result.output
    small = ICNet(ICNetConfig.from_json(info_a.config.to_json()).with_classes(5))
    path_c = tmp_path / "c.safetensors"
    save_checkpoint(small, path_c)
    result = cli.invoke(app, ["average", str(path_a), str(path_c), "--out", str(tmp_path / "bad.safetensors")])
    assert result.exit_code == 2 and "differs" in result.output
    assert not (tmp_path / "one.safetensors").exists() and not (tmp_path / "bad.safetensors").exists()


def test_adjust_logits_shifts_only_the_classifier_bias_and_every_output_pixel_by_tau_log_w(saved, tmp_path):
    """The adjusted model's logits are the original ones minus tau·log w_c at every pixel (the shift
    passes through the final bilinear resize); no other tensor changes; the provenance says how."""
    from icnet_deploy.model.weights import adjust_logits

    model, path = saved
    weights = [0.5 + 0.2 * c for c in range(model.config.num_classes)]
    out = tmp_path / "adjusted.safetensors"
    provenance = adjust_logits(path, out, weights, tau=0.7, weights_source="a test")
    before, info = read_checkpoint(path)
    after, info_after = read_checkpoint(out)
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["classifier.bias"]
    shift = 0.7 * torch.log(torch.tensor(weights))
    adjusted = load_model(out)
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(adjusted(x), model(x) - shift.view(1, -1, 1, 1), atol=1e-4, rtol=1e-6)
    step = provenance["logit_adjustment"]
    assert step["tau"] == 0.7 and step["class_weights_from"] == "a test"
    assert step["source"] == {"path": path.name, "sha256": info["sha256"]}  # the file by name and hash
    assert info_after["provenance"] == provenance and provenance["note"] == "test"  # earlier provenance kept
    # tau = 0 changes nothing but the provenance.
    same = tmp_path / "same.safetensors"
    adjust_logits(path, same, weights, tau=0.0)
    assert all(torch.equal(before[k], v) for k, v in read_checkpoint(same)[0].items())


def test_adjust_logits_refuses_bad_weights_twice_adjusted_and_unknown_weights(saved, tmp_path):
    from icnet_deploy.model.weights import adjust_logits

    model, path = saved
    n = model.config.num_classes
    out = tmp_path / "x.safetensors"
    with pytest.raises(ModelError, match="records no class weights"):
        adjust_logits(path, out)
    with pytest.raises(ModelError, match=f"3 class weights for a classifier of {n} classes"):
        adjust_logits(path, out, [1.0, 2.0, 3.0])
    with pytest.raises(ModelError, match="positive"):
        adjust_logits(path, out, [1.0] * (n - 1) + [0.0])
    with pytest.raises(ModelError, match="tau"):
        adjust_logits(path, out, [1.0] * n, tau=1.5)
    assert not out.exists()
    adjust_logits(path, out, [2.0] * n)
    with pytest.raises(ModelError, match="already logit-adjusted"):
        adjust_logits(out, tmp_path / "twice.safetensors", [2.0] * n)
    assert not (tmp_path / "twice.safetensors").exists()
