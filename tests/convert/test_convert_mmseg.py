"""mmsegmentation ICNet → converted checkpoint: the same logits as mmseg's own forward pass.

Runs where mmsegmentation, mmengine and mmcv-lite are importable (``tasks.py setup`` installs them):
mmseg builds its model-zoo ICNet (R50/R101 Cityscapes config) with random weights and random BN
statistics, saves it as mmengine's Runner does, ``icnet-deploy convert`` converts it, and the two
networks are compared tensor for tensor on random and photo inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmseg_reference import build_mmseg_icnet, mmseg_available, save_like_mmengine
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.model.weights import load_model

available, why = mmseg_available()
pytestmark = pytest.mark.skipif(not available, reason=why)
cli = CliRunner()
PHOTOS = Path(__file__).resolve().parents[2] / "src" / "icnet_deploy" / "assets" / "photos"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    """(mmseg model, converted toolkit model, the .pth, the .safetensors)."""
    folder = tmp_path_factory.mktemp("mmseg_r50")
    model, cfg = build_mmseg_icnet("r50", seed=0)
    pth = folder / "icnet_r50-d8_cityscapes.pth"
    save_like_mmengine(model, cfg, pth)
    out = folder / "icnet_mmseg_r50.safetensors"
    result = cli.invoke(app, ["convert", str(pth), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return model, load_model(out), pth, out


def _inputs(height: int, width: int, config) -> list[tuple[str, torch.Tensor]]:
    from PIL import Image

    from icnet_deploy.data.transforms import preprocess

    g = torch.Generator().manual_seed(height)
    photo = np.asarray(Image.open(PHOTOS / "astronaut.png").convert("RGB").resize((width, height), Image.BILINEAR))
    return [("random", torch.randn(1, 3, height, width, generator=g) * 1.5),
            ("photo", torch.from_numpy(preprocess(photo, config.mean, config.std)))]


def _compare(mm_model, net, height: int, width: int) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for kind, x in _inputs(height, width, net.config):
        with torch.no_grad():
            ref = mm_model(x, mode="tensor")  # mmseg's logits at 1/8
            coarse = net.forward_coarse(x)
            full = net(x)
        assert coarse.shape == ref.shape, (kind, coarse.shape, ref.shape)
        assert float((coarse - ref).abs().max()) <= TOLERANCE, kind
        # mmseg's predict: the 1/8 logits resized to the input (bilinear, align_corners=False)
        ref_full = F.interpolate(ref, size=(height, width), mode="bilinear", align_corners=False)
        assert full.shape == ref_full.shape
        delta = float((full - ref_full).abs().max())
        assert delta <= TOLERANCE, kind
        # labels identical, except at exact ties: a pixel whose two best classes are closer than the float
        # rounding of two correct implementations (2·max|Δlogit|) may pick either (random weights make a
        # few of those among 2 M pixels)
        differ = full.argmax(1) != ref_full.argmax(1)
        if bool(differ.any()):
            top2 = ref_full.topk(2, dim=1).values
            margin = (top2[:, 0] - top2[:, 1])[differ]
            assert float(margin.max()) <= 2 * delta, (kind, int(differ.sum()), float(margin.max()))
            assert int(differ.sum()) <= 1e-5 * differ.numel(), (kind, int(differ.sum()))
        assert float(ref.abs().max()) > 1.0  # the comparison is between real, non-vanishing logits


def test_converted_r50_matches_mmseg_at_512x1024(r50):
    mm_model, net, _, _ = r50
    _compare(mm_model, net, 512, 1024)


@pytest.mark.slow
def test_converted_r50_matches_mmseg_at_1024x2048(r50):
    mm_model, net, _, _ = r50
    _compare(mm_model, net, 1024, 2048)


def test_converted_r50_matches_mmseg_at_an_odd_size(r50):
    """Odd sizes exercise mmseg's scale_factor=0.5 resizes (⌊n/2⌋) and the ceil-mode max-pool."""
    mm_model, net, _, _ = r50
    _compare(mm_model, net, 130, 258)


def test_provenance_and_normalisation_are_recorded(r50):
    import hashlib

    _, net, pth, out = r50
    source = net.checkpoint_info["provenance"]["converted_from"]
    assert source["file"] == pth.name
    assert source["sha256"] == hashlib.sha256(pth.read_bytes()).hexdigest()
    assert source["framework"] == "mmsegmentation" and source["framework_version"] == "1.2.2"
    assert source["read_with"] == "restricted"  # mmengine's meta/message_hub fail weights_only
    assert net.config.name == "icnet_mmseg_r50" and net.config.num_classes == 19
    assert net.config.mean == (123.675, 116.28, 103.53) and net.config.std == (58.395, 57.12, 57.375)
    result = cli.invoke(app, ["info", "--checkpoint", str(out), "--size", "256x512"])
    assert result.exit_code == 0, result.output
    assert "mmsegmentation 1.2.2" in result.output and pth.name in result.output


def test_r101_converts_and_matches(tmp_path):
    model, cfg = build_mmseg_icnet("r101", seed=3)
    pth = tmp_path / "icnet_r101.pth"
    save_like_mmengine(model, cfg, pth)
    out = tmp_path / "r101.safetensors"
    result = cli.invoke(app, ["convert", str(pth), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    net = load_model(out)
    assert net.config.name == "icnet_mmseg_r101"
    _compare(model, net, 128, 256)


def test_a_damaged_mmseg_checkpoint_lists_each_problem(r50, tmp_path):
    _, _, pth, _ = r50
    checkpoint = torch.load(pth, map_location="cpu", weights_only=False)  # written by this test: trusted
    state = checkpoint["state_dict"]
    del state["neck.cff_12.conv_high.conv.weight"]
    state["decode_head.convs.0.conv.weight"] = torch.zeros(64, 128, 3, 3)
    state["auxiliary_head.1.conv_seg.weight"] = torch.zeros(7, 128, 1, 1)
    state["backbone.extra.weight"] = torch.zeros(3)
    bad = tmp_path / "damaged.pth"
    torch.save({"state_dict": state}, bad)
    out = tmp_path / "out.safetensors"
    result = cli.invoke(app, ["convert", str(bad), "-o", str(out)])
    assert result.exit_code == 2
    text = result.output
    assert "missing key cff_8.high.0.weight" in text
    assert "shape of head.0.weight" in text
    assert "class count: auxiliary_head.1.conv_seg.weight has 7 classes" in text
    assert "unexpected key backbone.extra.weight" in text
    assert not out.exists()


def test_the_deployment_path_takes_a_converted_model(r50, tmp_path):
    """export → build-engine --fp16 → infer, at a small size, on the converted checkpoint."""
    _, _, _, checkpoint = r50
    fp32, fp16 = tmp_path / "r50.onnx", tmp_path / "r50_fp16.onnx"
    result = cli.invoke(app, ["export", "--checkpoint", str(checkpoint), "--height", "128", "--width", "256",
                              "-o", str(fp32), "--verify-images", "1"])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["build-engine", str(fp32), "--fp16", "-o", str(fp16)])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["infer", str(PHOTOS / "coffee.png"), "--engine", str(fp16), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "coffee_labelTrainIds.png").is_file()
