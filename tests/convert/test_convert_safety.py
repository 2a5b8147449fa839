"""Bad sources for ``icnet-deploy convert``: code in a pickle, truncated files, other architectures.

Each is refused with exit 2, a message naming the file and the problem, nothing written — and a
pickle's code is never run.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.convert import ConversionError, convert_checkpoint
from icnet_deploy.convert.api import MAX_PROBLEM_LINES
from icnet_deploy.convert.safe_pickle import Placeholder, load_pth
from icnet_deploy.errors import ModelError

cli = CliRunner()


class _RunsCode:
    """Unpickling this calls os.system (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _RunsCodeViaEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload", [_RunsCode, _RunsCodeViaEval])
@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "legacy-pickle"])
def test_a_pickle_carrying_code_is_refused_and_the_code_never_runs(tmp_path, payload, zip_format):
    marker = tmp_path / "code-ran"
    source = tmp_path / "evil.pth"
    checkpoint = {"meta": {"note": payload(marker)}, "state_dict": {"decode_head.conv_seg.weight": torch.zeros(19, 128, 1, 1)}}
    if zip_format:
        torch.save(checkpoint, source)
    else:
        source.write_bytes(pickle.dumps(checkpoint, protocol=2))
    out = tmp_path / "out.safetensors"
    result = cli.invoke(app, ["convert", str(source), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert str(source) in result.output and "refused" in result.output
    assert ("system" in result.output) if payload is _RunsCode else ("eval" in result.output)
    assert not marker.exists(), "the pickle's code ran"
    assert not out.exists()


def test_a_truncated_checkpoint_is_refused(tmp_path):
    source = tmp_path / "whole.pth"
    torch.save({"state_dict": {"a": torch.randn(256, 256)}, "meta": {"epoch": 1}}, source)
    cut = tmp_path / "truncated.pth"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    out = tmp_path / "out.safetensors"
    result = cli.invoke(app, ["convert", str(cut), "-o", str(out)])
    assert result.exit_code == 2
    assert str(cut) in result.output and "truncated or corrupt" in result.output
    assert not out.exists()
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert cli.invoke(app, ["convert", str(empty), "-o", str(out)]).exit_code == 2


def _resnet50_like_state() -> dict[str, torch.Tensor]:
    """A torchvision ResNet-50 state dict's keys and shapes (another architecture)."""
    from icnet_deploy.model.backbone import DilatedResNet
    from icnet_deploy.model.config import get_config

    state = {f"backbone.{k}": v for k, v in DilatedResNet(get_config("icnet_r50")).state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    return state


def test_a_checkpoint_of_another_architecture_lists_its_problems(tmp_path):
    source = tmp_path / "resnet50.pth"
    torch.save(_resnet50_like_state(), source)
    out = tmp_path / "out.safetensors"
    result = cli.invoke(app, ["convert", str(source), "-o", str(out)])
    assert result.exit_code == 2
    assert "not an mmsegmentation ICNet state dict" in result.output
    assert "unexpected key backbone.stem.0.0.weight" in result.output
    assert "more problems" in result.output  # capped, with the count of the rest
    assert not out.exists()
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(source, out)
    assert len(info.value.lines) == MAX_PROBLEM_LINES + 1
    assert len(info.value.problems) > MAX_PROBLEM_LINES


def test_plain_state_dicts_take_the_weights_only_path(tmp_path):
    source = tmp_path / "plain.pth"
    torch.save({"state_dict": {"x": torch.ones(2)}, "meta": {"iter": 3}}, source)
    obj, how = load_pth(source)
    assert how == "weights_only" and torch.equal(obj["state_dict"]["x"], torch.ones(2))


def test_data_objects_in_meta_become_inert_placeholders(tmp_path):
    """numpy values in ``meta`` fail weights_only; the restricted reader keeps the tensors and stands in for them."""
    import numpy as np

    source = tmp_path / "meta.pth"
    torch.save({"state_dict": {"x": torch.arange(3.0)}, "meta": {"seed": np.int64(7), "hist": np.zeros(3)}}, source)
    obj, how = load_pth(source)
    assert how == "restricted"
    assert torch.equal(obj["state_dict"]["x"], torch.arange(3.0))
    assert isinstance(obj["meta"]["seed"], Placeholder) and isinstance(obj["meta"]["hist"], Placeholder)


def test_not_a_checkpoint_and_wrong_names_are_refused(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        load_pth(text)
    zipped = tmp_path / "other.pth"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("readme.txt", "no pickle here")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        load_pth(zipped)
    with pytest.raises(ModelError, match="cannot tell the source format"):
        convert_checkpoint(text.rename(tmp_path / "notes.bin"), tmp_path / "o.safetensors")
    ok = tmp_path / "ok.pth"
    torch.save({"x": torch.ones(1)}, ok)
    with pytest.raises(ModelError, match="must be a .safetensors"):
        convert_checkpoint(ok, tmp_path / "o.pth")
    with pytest.raises(ModelError, match="unknown model config"):
        convert_checkpoint(ok, tmp_path / "o.safetensors", config="icnet_nope")
