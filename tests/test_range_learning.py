"""range_learning.py on the 128×256 fixture export: the torch replica reproduces ONNX Runtime's
INT8 graph, scales written back keep every real bias and run in ONNX Runtime as the replica
predicts, learning lowers the logit error against fp32 and changes nothing but scales and
biases (both INT8 targets), and graphs it cannot replicate are refused by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper

from icnet_deploy import quantize as Q
from icnet_deploy.backends.onnxruntime import create_session
from icnet_deploy.errors import ArtifactError
from icnet_deploy.range_learning import MIN_REPLICA_AGREEMENT, QDQReplica, apply_ranges, learn_ranges
from icnet_deploy.weight_rounding import quantized_convs


def _run(proto, batch):
    s = create_session(proto.SerializeToString(), threads=1)
    return s.run(None, {s.get_inputs()[0].name: batch})[0]


def _arrays(proto):
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


@pytest.fixture(scope="module", params=["cpu", "tensorrt"])
def qdq(request, small_quant_setup):
    pre, cache, batches = small_quant_setup
    return request.param, pre, Q.quantize_qdq(pre, cache, target=request.param, exclude=Q.default_fp32_nodes(pre)), batches


def test_the_replica_reproduces_onnx_runtime(qdq):
    _, _, model, batches = qdq
    replica = QDQReplica(model)  # the whole graph, final Resize included
    with torch.no_grad():
        mine = replica(torch.from_numpy(batches[0])).numpy()
    ort = _run(model, batches[0])
    assert mine.shape == ort.shape
    # ONNX Runtime's fused int8 kernels requantize in fixed point: a step now and then, not more; how
    # often depends on the CPU's int8 kernels (VNNI, AMX), and random weights sit near ties
    scale = float(np.abs(ort).max())
    assert np.abs(mine - ort).mean() < 0.01 * scale
    assert 100.0 * np.mean(mine.argmax(1) == ort.argmax(1)) > MIN_REPLICA_AGREEMENT


def test_written_scales_run_in_onnx_runtime_as_the_replica_predicts_and_keep_every_bias(qdq):
    target, _, model, batches = qdq
    replica = QDQReplica(model)
    convs = [c for c in quantized_convs(model.graph) if c.input_scale in replica.scale_names]
    chosen = convs[len(convs) // 2].input_scale  # one conv input, somewhere in the middle
    factors = {name: 1.0 for name in replica.scale_names}
    factors[chosen] = 1.7
    edited = apply_ranges(model, factors)
    before, after = _arrays(model), _arrays(edited)
    assert math.isclose(float(after[chosen]), 1.7 * float(before[chosen]), rel_tol=1e-6)
    for conv in quantized_convs(edited.graph):
        if conv.bias_q is None:
            continue
        old = before[conv.bias_q].astype(np.float64) * before[conv.bias_scale]
        new = after[conv.bias_q].astype(np.float64) * after[conv.bias_scale]
        np.testing.assert_allclose(after[conv.bias_scale], after[conv.input_scale] * after[conv.weight_scale], rtol=1e-6)
        assert np.all(np.abs(new - old) <= 0.51 * after[conv.bias_scale] + 1e-12)  # the same real bias, to half a step
    if target == "tensorrt":  # float biases: nothing to re-express
        assert all(np.array_equal(before[c.bias_float], after[c.bias_float]) for c in quantized_convs(edited.graph) if c.bias_float)
    with torch.no_grad():
        replica.log_factor[replica.scale_names.index(chosen)] = math.log(1.7)
        predicted = replica(torch.from_numpy(batches[1])).numpy()
    ort = _run(edited, batches[1])
    assert np.abs(predicted - ort).mean() < 0.01 * float(np.abs(ort).max())
    assert not np.allclose(ort, _run(model, batches[1]))  # the change did something


def test_learning_lowers_the_logit_error_and_changes_only_scales_and_biases(qdq):
    target, pre, model, batches = qdq
    stages = []
    learned, report = learn_ranges(model, pre, batches, iterations=24, threads=1,
                                   progress=lambda s, d, t: stages.append((s, d, t)))
    assert report.replica_agreement_pct > 97 and report.images == len(batches) and report.iterations == 24
    assert stages[0] == ("learning activation ranges", 0, 24) and stages[-1] == ("learning activation ranges", 24, 24)
    assert set(report.factors) == set(QDQReplica(model).scale_names) and len(report.factors) > 10
    assert any(abs(f - 1) > 0.01 for f in report.factors.values())
    d = report.to_dict()
    if not report.kept:  # the straight-through gradient can mislead: then the calibrated scales stay
        assert report.loss_after >= report.loss_before and not d["kept"]
        assert _arrays(learned).keys() == _arrays(model).keys()
        assert all(np.array_equal(v, _arrays(model)[k]) for k, v in _arrays(learned).items())
        assert target == "tensorrt"  # measured: on the cpu target's uint8 ranges it lowers the error
        return
    assert report.loss_after < report.loss_before and d["kept"]
    assert d["normalised_logit_error"]["after"] < d["normalised_logit_error"]["before"]
    assert d["scales"] == len(report.factors) and len(d["widened_most"]) == 5
    # same graph: nodes, zero points and int8 weights untouched; only activation scales and biases moved
    assert [(n.op_type, list(n.input), list(n.output)) for n in learned.graph.node] == \
           [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node]
    before, after = _arrays(model), _arrays(learned)
    biases = {c.bias_q for c in quantized_convs(model.graph)} | {c.bias_scale for c in quantized_convs(model.graph)}
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and changed <= set(report.factors) | biases
    assert all(after[k].dtype == before[k].dtype for k in before)
    # and the engine is closer to fp32 where it counts for the user: the logits ONNX Runtime computes
    fp32 = [_run(pre, b) for b in batches]
    err = [np.mean([np.mean((_run(g, b) - f) ** 2) for b, f in zip(batches, fp32)]) for g in (model, learned)]
    assert err[1] < err[0]


def test_a_graph_it_cannot_replicate_is_refused_by_name(small_quant_setup):
    pre, cache, _ = small_quant_setup
    model = Q.quantize_qdq(pre, cache, target="cpu", exclude=Q.default_fp32_nodes(pre))
    relu = next(n for n in model.graph.node if n.op_type == "Relu" or n.op_type == "Add")
    relu.op_type = "Sigmoid" if relu.op_type == "Relu" else "Sub"
    with pytest.raises(ArtifactError, match="cannot replicate in torch: (Sigmoid|Sub)"):
        QDQReplica(model)


def test_no_images_or_no_iterations_are_refused(small_quant_setup):
    pre, cache, batches = small_quant_setup
    model = Q.quantize_qdq(pre, cache, target="cpu", exclude=Q.default_fp32_nodes(pre))
    with pytest.raises(ArtifactError, match="no calibration images"):
        learn_ranges(model, pre, [])
    with pytest.raises(ArtifactError, match="at least 1"):
        learn_ranges(model, pre, batches, iterations=0)
    with pytest.raises(ArtifactError, match="no scale 'nope'"):
        apply_ranges(model, {"nope": 2.0})


def test_a_nearest_resize_is_refused_by_name(small_quant_setup):
    pre, cache, _ = small_quant_setup
    model = Q.quantize_qdq(pre, cache, target="cpu", exclude=Q.default_fp32_nodes(pre))
    resize = next(n for n in model.graph.node if n.op_type == "Resize" and n.output[0] != model.graph.output[0].name)
    for a in resize.attribute:
        if a.name == "mode":
            a.CopyFrom(helper.make_attribute("mode", "nearest"))
    replica = QDQReplica(model)
    x = np.zeros((1, 3, 128, 256), np.float32)
    with pytest.raises(ArtifactError, match=f"{resize.name} is a nearest Resize"):
        replica(torch.from_numpy(x))


def test_a_dynamic_export_builds_with_calibrated_ranges_and_says_why(small_checkpoint, calib_dir, tmp_path):
    # its Resize sizes are computed from the input's shape (Shape, Gather, Concat…): no replica, no failure
    from icnet_deploy.build import build_engine
    from icnet_deploy.export import export

    src = tmp_path / "dynamic.onnx"
    export(small_checkpoint, src, height=128, width=256, dynamic=True, verify_images=1, verify_sizes=[(128, 256)])
    m = build_engine(src, tmp_path / "dynamic_int8.onnx", precision="int8", calib=calib_dir, target_agreement=None,
                     size=(128, 256), range_learning=True, range_iterations=2, threads=1)
    skipped = m.details["range_learning"]["skipped"]
    assert "cannot replicate in torch" in skipped and "Shape" in skipped
    assert (tmp_path / "dynamic_int8.onnx").is_file()


def test_a_graph_with_no_quantized_activation_is_unreplicable(small_quant_setup):
    from icnet_deploy.range_learning import Unreplicable

    pre, cache, batches = small_quant_setup
    everything = {n: "fp32" for n in Q.quantizable_nodes(pre)}
    model = Q.quantize_qdq(pre, cache, target="cpu", exclude=everything)
    with pytest.raises(Unreplicable, match="quantizes no activations"):
        learn_ranges(model, pre, batches[:1], iterations=1)
