"""`check --int8-breakdown`: the unquantized-activation graphs are exact, and the split runs on a real INT8 build."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.errors import ArtifactError
from icnet_deploy.diagnostics.int8_breakdown import STEPS, activation_pairs, without_activation_quantization

cli = CliRunner()


def _qdq_identity(zero_point: np.ndarray, scale: float = 0.1):
    """y = DQ(Q(x)) with one per-tensor scale and zero point: the smallest QDQ graph."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["y"], name="dq")]
    inits = [numpy_helper.from_array(np.array(scale, np.float32), "s"), numpy_helper.from_array(zero_point, "z")]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("zero_point, rounded, clipped, unquantized", [
    # uint8, zero point 0: range [0, 25.5], the quantizer's folded Relu
    (np.array(0, np.uint8), [0, 0, 0.3, 25.5], [0, 0.04, 0.26, 25.5], [0, 0.04, 0.26, 30]),
    # uint8, zero point 128: range [-12.8, 12.7], no Relu
    (np.array(128, np.uint8), [-1, 0, 0.3, 12.7], [-1, 0.04, 0.26, 12.7], [-1, 0.04, 0.26, 30]),
    # int8 symmetric (TensorRT target): range [-12.8, 12.7]
    (np.array(0, np.int8), [-1, 0, 0.3, 12.7], [-1, 0.04, 0.26, 12.7], [-1, 0.04, 0.26, 30]),
])
def test_activation_graphs_clip_or_pass_exactly(zero_point, rounded, clipped, unquantized):
    model = _qdq_identity(zero_point)
    x = np.array([-1, 0.04, 0.26, 30], np.float32)
    assert len(activation_pairs(model)) == 1
    np.testing.assert_allclose(_run(model, x), rounded, atol=1e-6)
    ranges = without_activation_quantization(model, clip=True)
    weights_only = without_activation_quantization(model, clip=False)
    np.testing.assert_allclose(_run(ranges, x), clipped, atol=1e-6)
    np.testing.assert_allclose(_run(weights_only, x), unquantized, atol=1e-6)
    for variant in (ranges, weights_only):
        assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in variant.graph.node}
    assert {n.op_type for n in model.graph.node} == {"QuantizeLinear", "DequantizeLinear"}  # the input is untouched


def test_a_dequantize_without_its_quantize_is_refused():
    model = _qdq_identity(np.array(0, np.uint8))
    model.graph.node[1].input[0] = "x"
    del model.graph.node[0]
    with pytest.raises(ArtifactError, match="reads no QuantizeLinear"):
        activation_pairs(model)


@pytest.fixture(scope="module")
def int8_engine(tmp_path_factory, small_onnx, calib_dir):
    out = tmp_path_factory.mktemp("breakdown") / "icnet_int8.onnx"
    result = cli.invoke(app, ["build-engine", str(small_onnx), "--int8", "--calib", str(calib_dir), "--fixed-rule",
                              "--threads", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_breakdown_of_a_real_int8_build(int8_engine):
    import onnx

    result = cli.invoke(app, ["check", "--engine", str(int8_engine), "--count", "2", "--threads", "1", "--int8-breakdown",
                              "--min-agreement", "0", "--min-agreement-unlabelled", "0", "--max-miou-drop", "100",
                              "--max-class-iou-drop", "100", "--min-within-delta", "0", "--min-within-delta-worst", "0",
                              "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    bd = data["int8_breakdown"]
    model = onnx.load(str(int8_engine))
    assert bd["activation_tensors"] == len({q.input[0] for q, _ in activation_pairs(model)}) > 50
    assert [s["set"] for s in bd["sets"]] == ["generated", "photos"] and [s["images"] for s in bd["sets"]] == [2, 4]
    check_agreement = {s["set"]: s["agreement_pct"] for s in data["sets"]}
    for s in bd["sets"]:
        agree, lost = s["agreement_pct"], s["lost_pct"]
        assert set(agree) == {k for k, _ in STEPS} and all(0 <= v <= 100 for v in agree.values())
        # the steps add up to what the engine loses against the fp32 graph
        assert sum(lost.values()) == pytest.approx(100 - agree["engine"], abs=1e-3)
        # the engine's own agreement with the fp32 ONNX is the check's with eager, up to the export's rounding
        assert agree["engine"] == pytest.approx(check_agreement[s["set"]], abs=0.5)
    assert "INT8 breakdown" in result.stderr and "lost to range clipping" in result.stderr


def test_breakdown_needs_an_int8_engine(small_onnx):
    result = cli.invoke(app, ["check", "--engine", str(small_onnx), "--count", "1", "--no-photos", "--int8-breakdown"])
    assert result.exit_code == 2 and "--int8-breakdown needs an INT8 ONNX engine" in result.output


def test_a_failed_int8_check_points_to_the_breakdown(int8_engine):
    result = cli.invoke(app, ["check", "--engine", str(int8_engine), "--count", "1", "--no-photos", "--threads", "1",
                              "--max-logit-error", "0"])
    assert result.exit_code == 1 and "hint: --int8-breakdown" in result.stderr


def test_a_reference_of_another_shape_is_refused(int8_engine, tmp_path, small_checkpoint):
    from icnet_deploy.export import export

    other = tmp_path / "other.onnx"
    export(small_checkpoint, other, height=64, width=128)
    result = cli.invoke(app, ["check", "--engine", str(int8_engine), "--count", "1", "--no-photos", "--threads", "1",
                              "--int8-breakdown", "--reference", str(other)])
    assert result.exit_code == 2 and "not the fp32 graph this engine was built from" in result.output
