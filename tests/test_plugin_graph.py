"""``export --outputs labels --plugin``: the graph ends in the icnet_deploy:UpsampleArgmax node (for
TensorRT), the manifest records the op, ONNX Runtime paths refuse it with one line, and the node
turns back into the export's own Resize exactly (what an INT8/FP16 TensorRT build calibrates on)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from icnet_deploy.ort_session import create_session
from icnet_deploy.cli import app
from icnet_deploy.errors import BackendUnavailable, ModelError
from icnet_deploy.manifest import read_manifest
from icnet_deploy.plugin_graph import has_upsample_argmax, with_upsample_argmax, without_upsample_argmax
from icnet_deploy.plugins import op_record

cli = CliRunner()


@pytest.fixture(scope="module")
def plugin_onnx(tmp_path_factory, small_checkpoint):
    path = tmp_path_factory.mktemp("plugin") / "icnet_plugin.onnx"
    result = cli.invoke(app, ["export", "--checkpoint", str(small_checkpoint), "--height", "128", "--width", "256",
                              "--outputs", "labels", "--plugin", "--verify-images", "1", "-o", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return path


def test_plugin_export_ends_in_the_op_and_records_it(plugin_onnx):
    proto = onnx.load(str(plugin_onnx))
    op, cast = proto.graph.node[-2:]
    assert (op.domain, op.op_type, cast.op_type) == ("icnet_deploy", "UpsampleArgmax", "Cast")
    assert op.input[1] == "image" and {a.name: a.s for a in op.attribute} == {"plugin_namespace": b"icnet_deploy"}
    assert "Resize" not in {n.op_type for n in proto.graph.node[-3:]} and "ArgMax" not in {n.op_type for n in proto.graph.node}
    out = proto.graph.output[0]
    assert out.name == "labels" and out.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [1, 128, 256]
    m = read_manifest(plugin_onnx)
    assert (m.output_kind, m.output_name, m.output_dtype, m.target) == ("labels", "labels", "uint8", "tensorrt")
    plugin = m.details["plugin"]
    assert {k: plugin[k] for k in ("name", "domain", "version", "source_sha256")} == \
        {k: op_record()[k] for k in ("name", "domain", "version", "source_sha256")}
    assert m.details["verified"] and m.details["export_parity"]["passed"]  # the logits graph it ends
    assert m.details["op_histogram"]["UpsampleArgmax"] == 1 and m.details["output_shape"] == [1, 128, 256]


@pytest.mark.parametrize("command", [
    ["infer", "IMAGES", "--engine", "ENGINE", "-o", "OUT"],
    ["check", "--engine", "ENGINE", "--count", "1"],
    ["bench", "--engine", "ENGINE", "--iters", "1", "--no-memory"],
    ["build-engine", "ENGINE", "--int8", "-o", "OUT/int8.onnx"],
])
def test_onnx_runtime_paths_refuse_the_plugin_graph_in_one_line(plugin_onnx, tmp_path, command):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (96, 64)).save(images / "a.png")
    args = [{"ENGINE": str(plugin_onnx), "IMAGES": str(images), "OUT": str(tmp_path / "out")}.get(a, a) for a in command]
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.output.splitlines() if "error" in ln]  # (bench shows its progress bar first)
    assert len(errors) == 1 and errors[0].startswith("error:"), result.output
    assert "ONNX Runtime cannot run" in errors[0] and "--backend tensorrt" in errors[0]
    assert not (tmp_path / "out" / "int8.onnx").exists()


def test_the_runner_refuses_before_onnxruntime_sees_it(plugin_onnx):
    from icnet_deploy.backends import load

    with pytest.raises(BackendUnavailable, match="UpsampleArgmax TensorRT plugin"):
        load(plugin_onnx)


def test_plugin_needs_labels_outputs(tmp_path, small_checkpoint):
    result = cli.invoke(app, ["export", "--checkpoint", str(small_checkpoint), "--height", "64", "--width", "64",
                              "--plugin", "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "--outputs labels --plugin" in result.output
    assert not (tmp_path / "x.onnx").exists()


def _run(proto, x):
    return create_session(proto.SerializeToString()).run(None, {"image": x})[0]


def test_the_node_turns_back_into_the_export_s_resize_exactly(plugin_onnx, small_onnx):
    """Static graph: constant sizes, the same logits as the plain export of the same checkpoint, bit for bit."""
    back = without_upsample_argmax(onnx.load(str(plugin_onnx)))
    onnx.checker.check_model(back, full_check=True)
    assert not has_upsample_argmax(back) and all(o.domain != "icnet_deploy" for o in back.opset_import)
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 256)).astype(np.float32)
    assert np.array_equal(_run(back, x), _run(onnx.load(str(small_onnx)), x))


def test_dynamic_graph_round_trip(tmp_path, small_checkpoint):
    from icnet_deploy.export import export

    path = tmp_path / "dynamic.onnx"
    export(small_checkpoint, path, height=128, width=256, dynamic=True, verify=False)
    logits = onnx.load(str(path))
    labelled = with_upsample_argmax(logits)
    out_dims = [d.dim_param for d in labelled.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == ["batch", "height", "width"] and has_upsample_argmax(labelled)
    back = without_upsample_argmax(labelled)
    for shape in ((1, 3, 96, 160), (2, 3, 129, 257)):  # other sizes and batch than the tracing ones
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        assert np.array_equal(_run(back, x), _run(logits, x))


def test_only_a_logits_graph_can_take_the_node(small_labels_onnx):
    with pytest.raises(ModelError, match="nothing for UpsampleArgmax to replace"):
        with_upsample_argmax(onnx.load(str(small_labels_onnx)))
    with pytest.raises(ModelError, match="no icnet_deploy:UpsampleArgmax node"):
        without_upsample_argmax(onnx.load(str(small_labels_onnx)))


def test_export_json_reports_the_plugin(tmp_path, small_checkpoint):
    result = cli.invoke(app, ["export", "--checkpoint", str(small_checkpoint), "--height", "64", "--width", "128",
                              "--outputs", "labels", "--plugin", "--no-verify", "-o", str(tmp_path / "p.onnx"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["manifest"]["details"]["plugin"]["name"] == "UpsampleArgmax"
    assert data["manifest"]["output_kind"] == "labels" and "labels uint8" in result.stderr
