"""quantize.py: calibration data, the calibration cache, QDQ graph structure, FP16, the sensitivity search.

All on 128×256 random-weight exports (see conftest): random-weight class scores are nearly tied,
so agreement bounds here are loose sanity checks; the real parity numbers come from the shipped
checkpoint (see the build-engine manifest and benchmarks/cpu_engines.py).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from icnet_deploy import quantization as Q
from icnet_deploy import onnx_graph
from icnet_deploy.errors import ArtifactError, DataError, IcnetDeployError
from icnet_deploy.manifest import read_manifest
from icnet_deploy.upsample import labels_of

H, W = 128, 256


@pytest.fixture(scope="module")
def manifest(small_onnx):
    return read_manifest(small_onnx)


@pytest.fixture(scope="module")
def pre(small_onnx, tmp_path_factory):
    return onnx.load(str(Q.prepare_for_quantization(small_onnx, tmp_path_factory.mktemp("pre") / "pre.onnx")))


@pytest.fixture(scope="module")
def loader(calib_dir, manifest):
    return Q.ImageBatches.from_folder(calib_dir, height=H, width=W, mean=manifest.mean, std=manifest.std)


@pytest.fixture(scope="module")
def caches(pre, loader, small_onnx):
    gsha = onnx_graph.graph_sha256(onnx.load(str(small_onnx)))
    return {m: Q.calibrate(pre, loader, m, image_set_sha256=loader.image_set_sha256(), source_graph_sha256=gsha)
            for m in Q.CALIB_METHODS}


def _run(proto, x):
    from icnet_deploy.ort_session import create_session

    session = create_session(proto.SerializeToString() if not isinstance(proto, (str, bytes)) else proto, threads=1)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _x(loader):
    return next(iter(loader))


# -- the data-loader protocol ------------------------------------------------------------------
def test_image_batches_read_through_preprocess_at_model_size(calib_dir, manifest, tmp_path):
    from PIL import Image

    big = np.asarray(Image.open(next(calib_dir.glob("*.png"))).resize((512, 300)))
    Image.fromarray(big).save(tmp_path / "odd_size.png")
    loader = Q.ImageBatches.from_folder(tmp_path, height=H, width=W, mean=manifest.mean, std=manifest.std)
    batches = list(loader)
    assert len(loader) == len(batches) == 1
    assert batches[0].shape == (1, 3, H, W) and batches[0].dtype == np.float32
    from icnet_deploy.data.transforms import preprocess, resize_image

    np.testing.assert_array_equal(batches[0], preprocess(resize_image(big, (H, W)), manifest.mean, manifest.std))


def test_image_batches_batching_and_identity(calib_dir, manifest):
    two = Q.ImageBatches.from_folder(calib_dir, height=H, width=W, mean=manifest.mean, std=manifest.std, batch=3)
    shapes = [b.shape[0] for b in two]
    assert shapes == [3, 1] and len(two) == 2 and two.num_images == 4
    one = Q.ImageBatches.from_folder(calib_dir, height=H, width=W, mean=manifest.mean, std=manifest.std, limit=2)
    assert one.num_images == 2
    assert one.image_set_sha256() != two.image_set_sha256()
    same = Q.ImageBatches.from_folder(calib_dir, height=H, width=W, mean=manifest.mean, std=manifest.std)
    assert same.image_set_sha256() == two.image_set_sha256()


def test_image_batches_errors(tmp_path, manifest):
    kw = {"height": H, "width": W, "mean": manifest.mean, "std": manifest.std}
    with pytest.raises(DataError, match="not found"):
        Q.ImageBatches.from_folder(tmp_path / "missing", **kw)
    with pytest.raises(DataError, match="no images"):
        Q.ImageBatches.from_folder(tmp_path, **kw)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images"):
        Q.ImageBatches.from_folder(tmp_path, **kw)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DataError, match="broken.png"):
        list(Q.ImageBatches.from_folder(tmp_path, **kw))


# -- calibration --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", Q.CALIB_METHODS)
def test_each_calibration_method(caches, pre, method):
    cache = caches[method]
    assert cache.method == method and cache.images == 4 and cache.input_size == [H, W]
    relu_outputs = {n.output[0] for n in pre.graph.node if n.op_type == "Relu"}
    assert relu_outputs <= set(cache.ranges)
    for name, (lo, hi) in cache.ranges.items():
        assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi, name
        if name in relu_outputs:
            assert lo == 0.0, name  # non-negative tensors start at 0
    assert (cache.percentile is not None) == (method == "percentile")


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_threaded_histograms_equal_onnxruntimes_own(caches, pre, loader, method, monkeypatch):
    """The calibration's per-tensor threads change the speed only: ORT's collector, unthreaded, gives the same ranges."""
    monkeypatch.setattr(Q.calibration, "_threaded_collector", lambda calibrator: None)  # ORT creates its own collector
    plain = Q.calibrate(pre, loader, method, image_set_sha256=caches[method].image_set_sha256,
                        source_graph_sha256=caches[method].graph_sha256)
    assert plain.ranges == caches[method].ranges


def test_percentile_and_entropy_clip_inside_minmax(caches):
    mm = caches["minmax"].ranges
    for method in ("percentile", "entropy"):
        ranges = caches[method].ranges
        assert all(ranges[k][1] <= mm[k][1] * (1 + 1e-5) + 1e-6 for k in mm if k in ranges)
        assert any(ranges[k][1] < mm[k][1] * 0.999 for k in mm if k in ranges)  # something was clipped


def _relu_graph() -> onnx.ModelProto:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_tail_cap_clips_a_sparse_population_of_massive_activations():
    """0.5% of the values are 100× the rest (what ICNet's low-res branch does on sky): the 99.99th
    percentile keeps them, the cap (3 × p99) cuts the range to the bulk."""
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        x = rng.uniform(0.0, 1.0, (1, 3, 64, 64)).astype(np.float32)
        x.reshape(-1)[rng.choice(x.size, x.size // 200, replace=False)] = 100.0
        batches.append(x)
    uncapped = Q.calibrate(_relu_graph(), batches, "percentile", tail_cap=None)
    capped = Q.calibrate(_relu_graph(), batches, "percentile")
    p99 = Q.calibrate(_relu_graph(), batches, "percentile", percentile=99.0, tail_cap=None)
    assert uncapped.ranges["y"][1] > 90 and uncapped.tail_cap is None
    assert capped.tail_cap == Q.DEFAULT_TAIL_CAP
    assert capped.ranges["y"] == [0.0, pytest.approx(Q.DEFAULT_TAIL_CAP * p99.ranges["y"][1], rel=1e-5)]
    assert capped.ranges["y"][1] < 4  # the bulk is in [0, 1]
    with pytest.raises(IcnetDeployError, match="tail cap"):
        Q.calibrate(_relu_graph(), batches, "percentile", tail_cap=0.5)


def test_tail_cap_never_widens_a_range(pre, loader, caches):
    uncapped = Q.calibrate(pre, loader, "percentile", tail_cap=None)
    p99 = Q.calibrate(pre, loader, "percentile", percentile=99.0, tail_cap=None)
    for name, (lo, hi) in caches["percentile"].ranges.items():
        cap = Q.DEFAULT_TAIL_CAP * p99.ranges[name][1]
        assert hi == pytest.approx(min(uncapped.ranges[name][1], cap) if cap > 0 else uncapped.ranges[name][1],
                                   rel=1e-5), name
        assert lo == pytest.approx(max(uncapped.ranges[name][0], -cap) if cap > 0 else uncapped.ranges[name][0],
                                   rel=1e-5, abs=1e-9), name


def test_unknown_method_is_refused(pre, loader):
    with pytest.raises(IcnetDeployError, match="unknown calibration method"):
        Q.calibrate(pre, loader, "kl-magic")


def test_cache_round_trip_and_refusals(caches, small_onnx, tmp_path):
    cache = caches["percentile"]
    path = cache.save(tmp_path / "calib.json")
    data = json.loads(path.read_text())  # readable: tensor -> [min, max] plus provenance
    assert data["method"] == "percentile" and data["ranges"] and data["graph_sha256"] and data["image_set_sha256"]
    gsha = onnx_graph.graph_sha256(onnx.load(str(small_onnx)))
    again = Q.CalibrationCache.load(path, graph_sha256=gsha, method="percentile")
    assert again.ranges.keys() == cache.ranges.keys() and again.sha256() == cache.sha256()
    assert all(np.allclose(again.ranges[k], cache.ranges[k]) for k in cache.ranges)
    with pytest.raises(ArtifactError, match="another model"):
        Q.CalibrationCache.load(path, graph_sha256="0" * 64)
    with pytest.raises(ArtifactError, match="minmax"):
        Q.CalibrationCache.load(path, method="minmax")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Q.CalibrationCache.load(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text(json.dumps({"ranges": {}}))
    with pytest.raises(ArtifactError, match="not an icnet-deploy calibration cache"):
        Q.CalibrationCache.load(tmp_path / "other.json")
    with pytest.raises(ArtifactError, match="not found"):
        Q.CalibrationCache.load(tmp_path / "missing.json")


def test_graph_hash_ignores_metadata(small_onnx):
    proto = onnx.load(str(small_onnx))
    before = onnx_graph.graph_sha256(proto)
    proto.metadata_props.add(key="created", value="another day")
    assert onnx_graph.graph_sha256(proto) == before


# -- QDQ structure --------------------------------------------------------------------------------
def _initializers(proto):
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


def _producers(proto):
    return {o: n for n in proto.graph.node for o in n.output}


def test_qdq_cpu_target_structure(pre, caches):
    keep = Q.default_fp32_nodes(pre)
    q = Q.quantize_qdq(pre, caches["percentile"], target="cpu", exclude=keep)
    inits, producers = _initializers(q), _producers(q)
    ops = [n.op_type for n in q.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    for conv in convs:
        weight_dq = producers.get(conv.input[1])
        if conv.name in keep:  # kept in fp32: float weights and a float input
            assert weight_dq is None and (producers.get(conv.input[0]) is None
                                          or producers[conv.input[0]].op_type != "DequantizeLinear"), conv.name
            continue
        assert weight_dq is not None and weight_dq.op_type == "DequantizeLinear", conv.name
        w, scale, zp = (inits[i] for i in weight_dq.input[:3])
        assert w.dtype == np.int8 and zp.dtype == np.int8 and not zp.any()  # symmetric int8 weights
        assert scale.shape == (w.shape[0],)  # per output channel
        act_dq = producers[conv.input[0]]
        assert act_dq.op_type == "DequantizeLinear" and inits[act_dq.input[2]].dtype == np.uint8, conv.name
    # uint8 activations: Relu folded into the producer's range (zero point 0 clips like Relu)
    assert ops.count("Relu") < sum(1 for n in pre.graph.node if n.op_type == "Relu") // 2
    assert {"/classifier/Conv"} <= set(keep) and any("final resize" in why for why in keep.values())


def test_qdq_tensorrt_target_is_symmetric_int8(pre, caches):
    q = Q.quantize_qdq(pre, caches["entropy"], target="tensorrt", exclude=Q.default_fp32_nodes(pre))
    inits = _initializers(q)
    zps = [inits[n.input[2]] for n in q.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)  # zero point 0 everywhere
    assert "Relu" in [n.op_type for n in q.graph.node]  # kept for TensorRT to fuse


def test_qdq_model_runs_and_roughly_agrees(pre, caches, small_onnx, loader):
    x = _x(loader)
    ref = _run(str(small_onnx), x)
    for target in Q.TARGETS:
        out = _run(Q.quantize_qdq(pre, caches["percentile"], target=target, exclude=Q.default_fp32_nodes(pre)), x)
        assert out.shape == ref.shape and out.dtype == np.float32
        assert Q.label_agreement(ref, out) > 80.0  # random weights: scores nearly tied, so only a sanity bound


def test_target_validation(pre, caches):
    with pytest.raises(IcnetDeployError, match="unknown INT8 target"):
        Q.quantize_qdq(pre, caches["minmax"], target="gpu")


# -- FP16 ---------------------------------------------------------------------------------------------
def test_fp16_graph_runs_and_agrees(small_onnx, loader):
    proto = Q.convert_fp16(onnx.load(str(small_onnx)))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io kept fp32
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    kinds = {i.data_type for i in proto.graph.initializer if i.name in conv_weights}
    assert kinds == {onnx.TensorProto.FLOAT16}
    producers = _producers(proto)
    for node in proto.graph.node:
        if node.op_type in Q.FP16_KEEP_OPS:  # fp32 islands: fed through a Cast to float
            src = producers.get(node.input[0])
            assert src is None or src.op_type == "Cast" and src.attribute[0].i == onnx.TensorProto.FLOAT or \
                src.op_type not in ("Conv", "Relu", "Add"), node.name
    x = _x(loader)
    ref, out = _run(str(small_onnx), x), _run(proto, x)
    assert out.dtype == np.float32 and Q.label_agreement(ref, out) > 99.0


def test_fp16_islands_are_fp32_inside(small_onnx, loader):
    """No fp32 → fp16 → fp32 Cast pair is left: between two fp32 nodes (the kept stem, MatMul → Resize,
    the input image → its Resize) the activation is not rounded to fp16."""
    source = onnx.load(str(small_onnx))
    stem = [n.name for n in source.graph.node if n.name.startswith("/stem/")]
    proto = Q.convert_fp16(source, keep_nodes=stem)
    producers = _producers(proto)

    def cast_to(node, dtype):
        return node is not None and node.op_type == "Cast" and node.attribute[0].i == dtype

    pairs = [n.name for n in proto.graph.node
             if cast_to(n, onnx.TensorProto.FLOAT) and cast_to(producers.get(n.input[0]), onnx.TensorProto.FLOAT16)]
    assert pairs == []
    image_readers = {n.op_type for n in proto.graph.node if proto.graph.input[0].name in n.input}
    assert "Resize" in image_readers  # the fp32 Resize of the input reads the image itself
    onnx.checker.check_model(proto)
    x = _x(loader)
    assert Q.label_agreement(_run(str(small_onnx), x), _run(proto, x)) > 99.0


# -- the sensitivity search ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, calib_dir):
    """A two-block ICNet (8..64 channels): few layers, so the search runs in seconds."""
    import torch

    from icnet_deploy.export import export
    from icnet_deploy.model import ICNet
    from icnet_deploy.model.config import ICNetConfig

    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = ICNet(ICNetConfig(name="tiny", width=0.125, blocks=(1, 1, 1, 1), cff_channels=32,
                                  high_res_channels=(8, 8, 16))).eval()
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export(model, path, height=H, width=W, verify=False)
    m = read_manifest(path)
    pre = onnx.load(str(Q.prepare_for_quantization(path, path.with_name("pre.onnx"))))
    loader = Q.ImageBatches.from_folder(calib_dir, height=H, width=W, mean=m.mean, std=m.std)
    return pre, Q.calibrate(pre, loader, "minmax"), list(loader)[:2]


@pytest.mark.parametrize("granularity", ["block", "layer"])
def test_sensitivity_search_meets_its_target(tiny, granularity):
    pre, cache, batches = tiny
    all_int8 = Q.sensitivity_search(pre, cache, batches, target_agreement=1.0, granularity=granularity)
    assert all_int8.met and all_int8.fp32_nodes == {} and all_int8.sensitivities == []
    base = all_int8.agreement
    target = min(99.99, base + (100.0 - base) / 2)  # halfway to perfect: needs some fp32 layers
    result = Q.sensitivity_search(pre, cache, batches, target_agreement=target, rank_batches=1, granularity=granularity)
    assert result.met and result.agreement >= target and result.granularity == granularity
    candidates = Q.quantizable_nodes(pre, [op for op in Q.QUANT_OP_TYPES if op != "Relu"])
    assert 0 < len(result.fp32_nodes) < len(candidates)
    assert all("rank " in why and "of the MACs" in why for why in result.fp32_nodes.values())
    # the claim holds when the graph is rebuilt with that fp32 set
    q = Q.quantize_qdq(pre, cache, exclude=result.fp32_nodes)
    got = np.mean([Q.label_agreement(_run(pre, b), _run(q, b)) for b in batches])
    assert got == pytest.approx(result.agreement, abs=1e-6)
    # the candidates with the most sensitivity per MAC are the ones kept, whole blocks at a time
    unit = onnx_graph.block_of if granularity == "block" else (lambda n: n)
    kept_units = {unit(n) for n in result.fp32_nodes}
    assert sum(s.mac_share for s in result.sensitivities) == pytest.approx(1.0, abs=1e-3)
    ranked = sorted(result.sensitivities, key=lambda s: -s.score / (s.mac_share + Q.COST_FLOOR))
    assert kept_units == {s.node for s in ranked[:len(kept_units)]}
    assert set(result.fp32_nodes) == {n for n in candidates if unit(n) in kept_units}


def test_sensitivity_search_within_delta_judges_by_the_gates_metric(tiny):
    """With ``delta`` the search's agreement is the gate's: within δ of fp32's best class, which
    counts every raw agreement and the near-tie flips besides."""
    from icnet_deploy.metrics import within_delta

    pre, cache, batches = tiny
    raw = Q.sensitivity_search(pre, cache, batches, target_agreement=1.0)
    lenient = Q.sensitivity_search(pre, cache, batches, target_agreement=1.0, delta=0.5)
    assert lenient.agreement >= raw.agreement
    q = Q.quantize_qdq(pre, cache)
    want = np.mean([100.0 * within_delta(_run(pre, b)[0], labels_of(_run(q, b))[0], 0.5).mean() for b in batches])
    assert lenient.agreement == pytest.approx(want, abs=1e-6)


def test_node_macs_counts_conv_and_matmul_work(tiny):
    pre = Q.qdq.with_shapes(tiny[0])
    macs = Q.node_macs(pre)
    weights = {i.name: list(i.dims) for i in pre.graph.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in pre.graph.value_info}
    conv = next(n for n in pre.graph.node if n.op_type == "Conv" and n.output[0] in shapes)
    w = weights[conv.input[1]]
    assert macs[conv.name] == np.prod(shapes[conv.output[0]]) * w[1] * w[2] * w[3] > 0
    assert all(v >= 0 for v in macs.values())


def test_block_of_groups_residual_blocks_and_modules():
    assert onnx_graph.block_of("/layer3/layer3.2/expand/expand.0/Conv") == "layer3/layer3.2"
    assert onnx_graph.block_of("/layer3/layer3.2/Add") == "layer3/layer3.2"
    assert onnx_graph.block_of("/layer2.1/conv/conv.0/Conv") == "layer2.1"
    assert onnx_graph.block_of("/pyramid/MatMul_5") == "pyramid"
    assert onnx_graph.block_of("/cff_8/low/low.0/Conv") == "cff_8"
    assert onnx_graph.block_of("/classifier/Conv") == "classifier"
    assert onnx_graph.block_of("Conv_12") == "Conv_12"
    with pytest.raises(IcnetDeployError, match="granularity"):
        Q.sensitivity_search(onnx.ModelProto(), None, [], target_agreement=99.0, granularity="channel")


# -- graph rewrite --------------------------------------------------------------------------------------
def test_commute_classifier_resize_is_exact_and_idempotent(small_onnx, loader):
    proto = onnx.load(str(small_onnx))
    rewritten, moved = Q.commute_classifier_resize(proto)
    assert moved == ["/classifier/Conv"]
    onnx.checker.check_model(rewritten, full_check=True)  # still topologically sorted and well-typed
    producers = _producers(rewritten)
    conv = next(n for n in rewritten.graph.node if n.name == "/classifier/Conv")
    assert producers[conv.input[0]].op_type == "Relu"  # reads the 1/8 features now
    x = _x(loader)
    ref, out = _run(str(small_onnx), x), _run(rewritten, x)
    scale = float(np.abs(ref).max())
    assert float(np.abs(ref - out).max()) <= 1e-5 * max(scale, 1.0)
    assert Q.commute_classifier_resize(rewritten)[1] == []  # nothing left to move
