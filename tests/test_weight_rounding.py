"""weight_rounding.py: GPTQ on a least-squares problem with a known answer, then on the 128×256
fixture export (both INT8 targets): what changes, that each conv's output error falls, that the
rounding carries over to another graph of the same model, and a mismatched fp32 graph refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from icnet_deploy import quantization as Q
from icnet_deploy.ort_session import create_session
from icnet_deploy.quantization.bias import correct_biases
from icnet_deploy.errors import ArtifactError
from icnet_deploy.quantization.rounding import apply_rounding, gptq, round_weights


def _problem(correlated: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, k, c = 4000, 48, 16
    x = torch.randn(k, n, generator=g, dtype=torch.float64)
    if correlated:  # inputs that share most of their signal, like neighbouring pixels of a patch
        x = 0.8 * torch.randn(1, n, generator=g, dtype=torch.float64) + 0.6 * x
    x = torch.cat([x, torch.ones(1, n, dtype=torch.float64)])
    w = torch.cat([torch.randn(c, k, generator=g, dtype=torch.float64), torch.randn(c, 1, generator=g, dtype=torch.float64)], 1)
    scale = w[:, :k].abs().amax(1) / 127 * 20  # coarse steps (~3 bits) so rounding matters
    return w, x, scale


def _output_error(w, x, steps, bias, scale):
    q = torch.cat([steps * scale[:, None], bias[:, None]], 1)
    return float(torch.linalg.norm((q - w) @ x))


def test_gptq_beats_nearest_on_correlated_inputs_and_stays_on_the_grid():
    w, x, scale = _problem(correlated=True)
    steps, bias = gptq(w, x @ x.T, scale)
    nearest = torch.clamp(torch.round(w[:, :-1] / scale[:, None]), -127, 127)
    assert torch.equal(steps, torch.round(steps)) and steps.abs().max() <= 127
    assert _output_error(w, x, steps, bias, scale) < 0.7 * _output_error(w, x, nearest, w[:, -1], scale)


def test_gptq_is_nearest_rounding_when_inputs_are_independent():
    # H diagonal (independent, zero-mean inputs, the bias input uncorrelated with them): there is
    # nothing to compensate with, so every weight rounds to its nearest step and the bias stays
    w, _, scale = _problem(correlated=False)
    h = torch.diag(torch.cat([torch.rand(w.shape[1] - 1, dtype=torch.float64) + 0.5, torch.tensor([1.0], dtype=torch.float64)]))
    steps, bias = gptq(w, h, scale)
    assert torch.equal(steps, torch.clamp(torch.round(w[:, :-1] / scale[:, None]), -127, 127))
    assert torch.allclose(bias, w[:, -1])


@pytest.fixture(scope="module")
def setup(small_quant_setup):
    return small_quant_setup


def _arrays(proto):
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


def _run(proto, batch):
    s = create_session(proto.SerializeToString(), threads=1)
    return s.run(None, {s.get_inputs()[0].name: batch})[0]


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_only_weights_and_biases_change_and_outputs_move_toward_fp32(setup, target):
    pre, cache, batches = setup
    qdq = Q.quantize_qdq(pre, cache, target=target, exclude=Q.default_fp32_nodes(pre))
    rounded, report = round_weights(qdq, pre, batches, threads=1)
    assert report.images == len(batches) and report.convs
    # each conv's output error on its sampled inputs falls (GPTQ never does worse than nearest there)
    assert all(c.error_gptq <= c.error_nearest * 1.0001 for c in report.convs)
    assert sum(c.error_gptq for c in report.convs) < 0.8 * sum(c.error_nearest for c in report.convs)
    d = report.to_dict()
    assert d["convs"] == len(report.convs) and d["mean_relative_output_error"]["gptq"] < d["mean_relative_output_error"]["nearest"]
    # the graph is the same; only int8 weights and (int32 or float) biases moved, scales did not
    assert [(n.op_type, list(n.input), list(n.output)) for n in rounded.graph.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in qdq.graph.node]
    before, after = _arrays(qdq), _arrays(rounded)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    kinds = {after[k].dtype for k in changed}
    assert np.dtype(np.int8) in kinds and kinds <= {np.dtype(np.int8), np.dtype(np.int32 if target == "cpu" else np.float32)}
    assert all(np.abs(after[k].astype(np.int32)).max() <= 127 for k in changed if after[k].dtype == np.int8)
    # the engine is closer to fp32 on the calibration images (the data GPTQ fitted)
    errs = [(np.abs(_run(rounded, b) - _run(pre, b)).mean(), np.abs(_run(qdq, b) - _run(pre, b)).mean()) for b in batches]
    assert sum(e for e, _ in errs) < sum(e for _, e in errs)


def test_rounding_carries_over_to_another_graph_of_the_same_model(setup):
    pre, cache, batches = setup
    qdq = Q.quantize_qdq(pre, cache, target="cpu")  # all int8
    rounded, report = round_weights(qdq, pre, batches[:2], threads=1)
    again = apply_rounding(Q.quantize_qdq(pre, cache, target="cpu"), report)
    assert again.SerializeToString() == rounded.SerializeToString()
    # a graph with the fixed rule's fp32 layers: its quantized convs take the rounding, the rest stay
    fixed = Q.quantize_qdq(pre, cache, target="cpu", exclude=Q.default_fp32_nodes(pre))
    applied = _arrays(apply_rounding(fixed, report))
    base = _arrays(fixed)
    changed = {k for k in base if not np.array_equal(base[k], applied[k])}
    assert changed and all(base[k].dtype in (np.int8, np.int32) for k in changed)


@pytest.mark.parametrize("correct, message", [(round_weights, "no fp32 counterpart"), (correct_biases, "no quantized Conv")])
def test_a_graph_quantized_from_another_model_is_refused(setup, correct, message):
    # both passes that edit a QDQ graph from its fp32 source (GPTQ, bias correction)
    pre, cache, batches = setup
    qdq = Q.quantize_qdq(pre, cache, target="cpu", exclude=Q.default_fp32_nodes(pre))
    foreign = onnx.ModelProto()
    foreign.CopyFrom(pre)
    for n in foreign.graph.node:
        n.name = "other_" + n.name
    with pytest.raises(ArtifactError, match=message):
        correct(qdq, foreign, batches[:1])


def test_the_probe_subgraph_computes_the_same_tensor_with_fewer_nodes(setup):
    from onnx import TensorProto, helper

    from icnet_deploy.quantization.rounding import _graph_up_to

    pre, cache, batches = setup
    qdq = Q.quantize_qdq(pre, cache, target="cpu")
    convs = [n for n in qdq.graph.node if n.op_type == "Conv"]
    tensor = convs[len(convs) // 2].input[0]
    sub = _graph_up_to(qdq, tensor)
    assert 0 < len(sub.graph.node) < len(qdq.graph.node) and [o.name for o in sub.graph.output] == [tensor]
    full = onnx.ModelProto()
    full.CopyFrom(qdq)
    full.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    s_full = create_session(full.SerializeToString(), threads=1)
    s_sub = create_session(sub.SerializeToString(), threads=1)
    want = s_full.run([tensor], {s_full.get_inputs()[0].name: batches[0]})[0]
    assert np.array_equal(s_sub.run(None, {s_sub.get_inputs()[0].name: batches[0]})[0], want)
