"""bias_correction.py on the 128×256 fixture export: what changes, that the shift it measures is
removed, both INT8 targets (a mismatched fp32 graph: test_weight_rounding.py)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from icnet_deploy import quantization as Q
from icnet_deploy.quantization.bias import correct_biases


@pytest.fixture(scope="module")
def setup(small_quant_setup):
    return small_quant_setup


def _arrays(proto):
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


def _total_shift(report) -> float:
    return sum(c.mean_abs for c in report.convs)


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_only_biases_change_and_the_measured_shift_goes_away(setup, target):
    pre, cache, batches = setup
    qdq = Q.quantize_qdq(pre, cache, target=target, exclude=Q.default_fp32_nodes(pre))
    fixed, report = correct_biases(qdq, pre, batches, threads=1)
    assert report.images == len(batches) and report.convs and _total_shift(report) > 0
    # the graph is the same; only the biases of the corrected convs moved
    assert [(n.op_type, list(n.input), list(n.output)) for n in fixed.graph.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in qdq.graph.node]
    before, after = _arrays(qdq), _arrays(fixed)
    producers = {o: n for n in qdq.graph.node for o in n.output}
    biases = set()
    for conv in (n for n in qdq.graph.node if n.op_type == "Conv" and n.name in {c.node for c in report.convs}):
        dq = producers.get(conv.input[2])
        biases.add(dq.input[0] if dq is not None and dq.op_type == "DequantizeLinear" else conv.input[2])
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and changed <= biases
    assert all(after[k].dtype == (np.int32 if target == "cpu" else np.float32) for k in changed)
    # measured again on the corrected graph, each conv's own shift is (nearly) gone
    _, again = correct_biases(fixed, pre, batches, threads=1)
    assert _total_shift(again) < 0.3 * _total_shift(report)
    # and the engine still runs and agrees with fp32 about as well (random weights: a loose bound)
    from icnet_deploy.ort_session import create_session

    def run(proto):
        s = create_session(proto.SerializeToString(), threads=1)
        return s.run(None, {s.get_inputs()[0].name: batches[0]})[0]

    ref = run(pre)
    assert Q.label_agreement(ref, run(fixed)) > 80.0
    assert np.abs(run(fixed) - ref).mean() <= np.abs(run(qdq) - ref).mean() * 1.05


def test_a_graph_with_every_conv_in_fp32_is_returned_unchanged(setup):
    pre, cache, batches = setup
    qdq = Q.quantize_qdq(pre, cache, target="cpu", exclude=Q.quantizable_nodes(pre))  # all of it fp32
    fixed, report = correct_biases(qdq, pre, batches[:1])
    assert report.convs == [] and report.images == 0
    assert _arrays(fixed).keys() == _arrays(qdq).keys()
    assert all(np.array_equal(a, _arrays(qdq)[k]) for k, a in _arrays(fixed).items())
