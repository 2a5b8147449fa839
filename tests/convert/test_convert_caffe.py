"""Caffe ICNet → ``icnet_r50_half_caffe``: a ``.caffemodel`` written with the project's own schema from
random weights, converted, and checked against a direct numpy evaluation of the first layers and
against the logits of the network the blobs came from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.convert.caffe import CAFFE_CONVS, IMAGE_CONVS
from icnet_deploy.convert.caffe_schema import caffe_messages
from icnet_deploy.model import ICNet, get_config
from icnet_deploy.model.weights import load_model

cli = CliRunner()
BGR_MEAN = (103.939, 116.779, 123.68)


def _random_caffe_network(seed: int = 0) -> ICNet:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ICNet(get_config("icnet_r50_half_caffe")).eval()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.6, 1.4)
                m.bias.data.normal_(0, 0.1)
    return model


def _blob(layer, array) -> None:
    blob = layer.blobs.add()
    blob.shape.dim.extend(array.shape)
    blob.data.extend(np.asarray(array, dtype=np.float32).reshape(-1).tolist())


def _write_caffemodel(model: ICNet, path, style: str = "BN", drop: tuple[str, ...] = ()) -> None:
    """The Caffe network the ICNet release describes, from ``model``'s tensors: BN layers (``_bnnomerge``)
    or BN merged into conv biases (the released models); image convs read BGR."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    net = caffe_messages()["NetParameter"](name="ICNet")
    scale = net.layer.add(name="data_sub1", type="Scale", bottom=["data"], top=["data_sub1"])
    _blob(scale, np.ones(3))
    for name, module in CAFFE_CONVS.items():
        if name in drop or name in ("sub4_out", "sub24_out"):
            continue
        conv = net.layer.add(name=name, type="Convolution", bottom=["x"], top=[name])
        if name == "conv6_cls":
            _blob(conv, state[f"{module}.weight"])
            _blob(conv, state[f"{module}.bias"])
            continue
        weight = state[f"{module}.0.weight"]
        if name in IMAGE_CONVS:
            weight = weight[:, ::-1]  # the Caffe network reads BGR
        g, b, m, v = (state[f"{module}.1.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
        if style == "BN":
            conv.convolution_param.bias_term = False
            _blob(conv, weight)
            bn = net.layer.add(name=f"{name}/bn", type="BN", bottom=[name], top=[name])
            for array in (g, b, m, v):
                _blob(bn, array.reshape(1, -1, 1, 1))
        else:  # merged, as the released caffemodels
            k = g / np.sqrt(v + 1e-5)
            _blob(conv, weight * k.reshape(-1, 1, 1, 1))
            _blob(conv, b - m * k)
    path.write_bytes(net.SerializeToString())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caffe")
    model = _random_caffe_network()
    source = folder / "icnet_cityscapes_bnnomerge.caffemodel"
    _write_caffemodel(model, source, "BN")
    out = folder / "icnet_caffe.safetensors"
    result = cli.invoke(app, ["convert", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return model, load_model(out), source


def _conv_bn_relu_numpy(x: np.ndarray, w: np.ndarray, g, b, m, v, eps=1e-5) -> np.ndarray:
    """3×3, stride 2, pad 1 conv, then BN and ReLU, in plain numpy (C×H×W)."""
    c, h, wd = x.shape
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    oh, ow = (h - 1) // 2 + 1, (wd - 1) // 2 + 1
    out = np.zeros((w.shape[0], oh, ow), np.float64)
    for i in range(3):
        for j in range(3):
            patch = pad[:, i:i + 2 * oh - 1:2, j:j + 2 * ow - 1:2]
            out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
    out = (out - m[:, None, None]) / np.sqrt(v[:, None, None] + eps) * g[:, None, None] + b[:, None, None]
    return np.maximum(out, 0)


def test_first_layer_matches_numpy_on_the_bgr_image(converted):
    """Caffe's conv1_sub1 + BN + ReLU on the BGR, mean-subtracted image, evaluated from the blobs in numpy,
    equals the converted model's first light-branch layer on the RGB image normalised by its config."""
    from icnet_deploy.convert.caffe import read_caffemodel
    from icnet_deploy.data.transforms import preprocess

    _, net, source = converted
    layers = {layer.name: layer for layer in read_caffemodel(source).layer}
    blobs = lambda name: [np.asarray(b.data, np.float64).reshape(list(b.shape.dim)) for b in layers[name].blobs]  # noqa: E731
    image = np.random.default_rng(0).integers(0, 256, size=(33, 65, 3), dtype=np.uint8)
    bgr = image[:, :, ::-1].astype(np.float64) - np.asarray(BGR_MEAN)
    (w,), (g, b, m, v) = blobs("conv1_sub1"), [a.reshape(-1) for a in blobs("conv1_sub1/bn")]
    expected = _conv_bn_relu_numpy(bgr.transpose(2, 0, 1), w, g, b, m, v)
    x = torch.from_numpy(preprocess(image, net.config.mean, net.config.std))
    with torch.no_grad():
        got = net.high_res[0](x)[0].numpy()
    assert np.abs(got - expected).max() < 1e-3 * max(1.0, np.abs(expected).max())
    with torch.no_grad():  # the trunk's first conv reads the image too: same channel reversal
        stem = net.trunk.stem[0](x)[0].numpy()
    (w,), (g, b, m, v) = blobs("conv1_1_3x3_s2"), [a.reshape(-1) for a in blobs("conv1_1_3x3_s2/bn")]
    expected = _conv_bn_relu_numpy(bgr.transpose(2, 0, 1), w, g, b, m, v)
    assert np.abs(stem - expected).max() < 1e-3 * max(1.0, np.abs(expected).max())


def test_converted_logits_equal_the_source_network(converted):
    model, net, _ = converted
    for key, value in model.state_dict().items():
        if "aux_classifier" in key:
            continue
        # the blobs were written BGR from these RGB weights: the conversion gives them back exactly
        assert torch.equal(net.state_dict()[key], value), key
    x = torch.randn(1, 3, 129, 257)  # 1025×2049's branch arithmetic at a small size (odd: corners align)
    with torch.no_grad():
        want, got = model(x), net(x)
    assert float((want - got).abs().max()) < 1e-4
    assert net.config.name == "icnet_r50_half_caffe" and net.config.std == (1.0, 1.0, 1.0)
    source = net.checkpoint_info["provenance"]["converted_from"]
    assert source["format"] == "caffe" and source["batch_norm"] == "BN" and "BGR" in source["input"]


def test_bn_merged_into_convolutions_converts(tmp_path):
    model = _random_caffe_network(seed=1)
    source = tmp_path / "icnet_cityscapes_train_30k.caffemodel"
    _write_caffemodel(model, source, "merged")
    out = tmp_path / "merged.safetensors"
    assert cli.invoke(app, ["convert", str(source), "-o", str(out)]).exit_code == 0
    net = load_model(out)
    x = torch.randn(1, 3, 129, 257)
    with torch.no_grad():
        want, got = model(x), net(x)
    assert float((want - got).abs().max()) < 1e-3 * float(want.abs().max())
    assert torch.equal(want.argmax(1), got.argmax(1)) or float((want.argmax(1) != got.argmax(1)).float().mean()) < 1e-3


def test_caffe_pooling_windows_are_the_prototxts_at_its_size():
    from icnet_deploy.model.icnet import adaptive_pool_matrix

    like = torch.zeros(1)
    m = adaptive_pool_matrix(33, 3, like, caffe=True)
    assert [int(r.nonzero()[0]) for r in m] == [0, 10, 20] and [int((r > 0).sum()) for r in m] == [13, 13, 13]
    assert torch.equal(adaptive_pool_matrix(32, 3, like, caffe=True), adaptive_pool_matrix(32, 3, like))


def test_bad_caffemodels_are_refused(tmp_path):
    model = _random_caffe_network(seed=2)
    whole = tmp_path / "whole.caffemodel"
    _write_caffemodel(model, whole, "BN")
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    out = tmp_path / "out.safetensors"
    result = cli.invoke(app, ["convert", str(cut), "-o", str(out)])
    assert result.exit_code == 2 and str(cut) in result.output
    partial = tmp_path / "partial.caffemodel"
    _write_caffemodel(model, partial, "BN", drop=("conv5_4_k1", "conv_sub2"))
    result = cli.invoke(app, ["convert", str(partial), "-o", str(out)])
    assert result.exit_code == 2
    assert "missing layer conv5_4_k1" in result.output and "missing layer conv_sub2" in result.output
    assert not out.exists()
