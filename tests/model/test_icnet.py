"""ICNet shapes at many sizes, train/eval outputs, pooling exactness, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from icnet_deploy.model import ICNet, ICNetConfig, branch_sizes, get_config
from icnet_deploy.model.icnet import CascadeOutputs, PyramidPoolingSum, adaptive_pool_matrix
from icnet_deploy.errors import ModelError


@pytest.fixture(scope="module")
def model() -> ICNet:
    torch.manual_seed(0)
    return ICNet().eval()


@pytest.mark.parametrize("size", [(64, 64), (64, 128), (97, 131), (128, 256), (257, 513), (180, 320)])
def test_eval_logits_have_input_size(model, size):
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 19, *size)
    assert torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1024, 2048), (1025, 2049), (720, 1280)])
def test_full_resolution_sizes(model, size):
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 19, *size)
    assert torch.isfinite(out).all()


def test_branch_sizes_follow_the_caffe_rule():
    sizes = branch_sizes(1025, 2049)
    assert sizes["1/2"] == (513, 1025)
    assert sizes["1/4"] == (257, 513)
    assert sizes["1/32"] == (33, 65)
    assert branch_sizes(1024, 2048)["1/32"] == (32, 64)


def test_training_mode_returns_three_cascade_outputs():
    torch.manual_seed(0)
    net = ICNet().train()
    out = net(torch.randn(2, 3, 128, 256))
    assert isinstance(out, CascadeOutputs)
    assert out.sub4.shape == (2, 19, 8, 16)  # 1/16
    assert out.sub24.shape == (2, 19, 16, 32)  # 1/8
    assert out.sub124.shape == (2, 19, 32, 64)  # 1/4


def test_training_outputs_at_odd_size():
    net = ICNet().train()
    out = net(torch.randn(2, 3, 97, 131))
    assert out.sub4.shape[-2:] == (7, 9)  # ceil(97/16), ceil(131/16)
    assert out.sub24.shape[-2:] == (13, 17)
    assert out.sub124.shape[-2:] == (26, 34)


@pytest.mark.parametrize("n,bins", [(33, 6), (65, 3), (32, 6), (7, 2), (2, 6), (1, 1), (13, 6)])
def test_pool_matrix_windows_are_exact(n, bins):
    x = torch.randn(1, 1, n, 1)
    m = adaptive_pool_matrix(n, bins, x)
    ours = torch.matmul(m, x[0, 0, :, 0])
    ref = F.adaptive_avg_pool2d(x, (bins, 1))[0, 0, :, 0]
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("h,w", [(33, 65), (32, 64), (8, 16), (9, 11), (2, 3), (45, 90)])
def test_pyramid_pooling_equals_adaptive_avg_pool(h, w):
    torch.manual_seed(1)
    x = torch.randn(2, 4, h, w)
    ours = PyramidPoolingSum((1, 2, 3, 6))(x)
    ref = x.clone()
    for b in (1, 2, 3, 6):
        ref = ref + F.interpolate(F.adaptive_avg_pool2d(x, b), size=(h, w), mode="bilinear", align_corners=False)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_half_width_channels_match_the_caffe_prototxt():
    net = ICNet(get_config("icnet_r50_half"))
    t = net.trunk
    assert [m[0].out_channels for m in t.stem] == [32, 32, 64]
    assert t.layer1[0].expand[0].out_channels == 128  # conv2_x: 32→32→128
    assert t.layer2[0].expand[0].out_channels == 256  # conv3_1: 64→64→256
    assert t.layer3[0].expand[0].out_channels == 512  # conv4_x: 128→512, dilation 2
    assert t.layer3[0].conv[0].dilation == (2, 2)
    assert t.layer4[0].expand[0].out_channels == 1024  # conv5_x: 256→1024, dilation 4
    assert t.layer4[0].conv[0].dilation == (4, 4)
    assert net.conv5_4[0].out_channels == 256
    assert [m[0].out_channels for m in net.high_res] == [32, 32, 64]


def test_full_width_config_doubles_the_trunk():
    net = ICNet(get_config("icnet_r50"))
    assert net.trunk.layer4[0].expand[0].out_channels == 2048
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 64, 128)).shape == (1, 19, 64, 128)


def test_class_count_is_configurable():
    net = ICNet(ICNetConfig(num_classes=7)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 7, 64, 64)
    with pytest.raises(ModelError):
        ICNetConfig(num_classes=0)


def test_forward_is_deterministic(model):
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_unknown_config_name_lists_known_ones():
    with pytest.raises(ModelError, match="icnet_r50_half"):
        get_config("icnet_r101")
