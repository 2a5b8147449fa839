"""The exact labels of the model's final bilinear upsample, from the 1/4-resolution logits."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from icnet_deploy.backends import load
from icnet_deploy.onnx_graph import coarse_logits_graph, final_resize_source
from icnet_deploy.upsample import argmax_classes, bilinear_argmax


def _upsampled_argmax(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(logits)[None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].argmax(0).numpy()


def _blobs(classes: int, h: int, w: int, seed: int) -> np.ndarray:
    """Logits with regions and boundaries like a segmentation's (smooth noise per class), not white noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((1, classes, max(2, h // 8), max(2, w // 8))).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(coarse), size=(h, w), mode="bicubic", align_corners=False)[0]
    return (4 * smooth + 0.1 * torch.randn(classes, h, w, generator=torch.Generator().manual_seed(seed))).numpy()


@pytest.mark.parametrize(("src", "size"), [((64, 128), (256, 512)),    # the model's ×4
                                           ((33, 65), (131, 259)),     # odd sizes, scale not an integer
                                           ((64, 128), (50, 70)),      # shrinking: still two taps
                                           ((1, 5), (4, 20)),          # a single source row
                                           ((40, 60), (40, 60))])      # same size: the plain argmax
def test_bilinear_argmax_equals_upsample_then_argmax(src, size):
    for seed, logits in enumerate([_blobs(19, *src, seed=0),
                                   np.random.default_rng(1).standard_normal((19, *src)).astype(np.float32)]):
        got = bilinear_argmax(logits, size)
        assert got.dtype == np.uint8 and got.shape == size
        assert (got == _upsampled_argmax(logits, size)).all(), f"case {seed}"


def test_bilinear_argmax_in_chunks(monkeypatch):
    import icnet_deploy.upsample as upsample

    monkeypatch.setattr(upsample, "_CHUNK", 1000)  # many chunks of boundary pixels
    logits = np.random.default_rng(2).standard_normal((7, 30, 40)).astype(np.float32)
    assert (bilinear_argmax(logits, (120, 160)) == _upsampled_argmax(logits, (120, 160))).all()


def test_argmax_classes_keeps_the_first_maximum():
    logits = np.random.default_rng(0).standard_normal((19, 20, 30)).astype(np.float32)
    logits[5, :3] = logits[2, :3] = 50.0  # a tie: the first class wins, as in ndarray.argmax
    got = argmax_classes(logits)
    assert (got == logits.argmax(0)).all() and (got[:3] == 2).all()
    with pytest.raises(ValueError, match="C×H×W"):
        argmax_classes(logits[0])


def test_coarse_graph_stops_before_the_final_resize(small_onnx, small_labels_onnx):
    proto = onnx.load(str(small_onnx))
    coarse = coarse_logits_graph(proto)
    final = proto.graph.node[-1]
    assert final.op_type == "Resize" and coarse.graph.output[0].name == final.input[0] == final_resize_source(proto)
    assert len(coarse.graph.node) < len(proto.graph.node)
    onnx.checker.check_model(coarse)
    assert coarse_logits_graph(onnx.load(str(small_labels_onnx))) is None  # ends in ArgMax: left alone
    assert final_resize_source(onnx.load(str(small_labels_onnx))) is None  # nor marked in a TensorRT engine


@pytest.mark.parametrize("artifact", ["checkpoint", "onnx", "labels"])
def test_runners_give_the_full_outputs_labels(artifact, small_checkpoint, small_onnx, small_labels_onnx):
    path = {"checkpoint": small_checkpoint, "onnx": small_onnx, "labels": small_labels_onnx}[artifact]
    x = np.random.default_rng(5).standard_normal((1, 3, 128, 256)).astype(np.float32)
    with load(path, threads=1) as runner:
        early = runner.infer_for_labels(x)
        full = runner.infer(x)
        labels = runner.predict_labels(x)
        at_image = runner.predict_labels(x, size=(100, 300))
    if artifact == "labels":
        assert early.shape == (1, 128, 256) and (labels == full).all()
    else:
        assert early.shape == (1, 19, 32, 64)  # 1/4 of the input: the final upsample skipped
        assert (labels == full.argmax(1)).all()
    assert labels.dtype == np.uint8 and at_image.shape == (1, 100, 300)
