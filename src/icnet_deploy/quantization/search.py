"""Mixed precision by measurement (opt-in): keep the fewest blocks in fp32 that meet a target agreement.

With a target agreement within δ logit, blocks are ranked by sensitivity per unit of cost (their
share of the multiply-accumulates) and kept in fp32, cheapest first, until the calibration images
meet the target (see ``sensitivity_search``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import IcnetDeployError
from ..onnx_graph import block_of, load_proto
from ..progress import StageProgress, no_progress
from ..upsample import labels_of
from .qdq import FOLLOWERS, QUANT_OP_TYPES, quantizable_nodes, quantize_qdq, with_shapes

__all__ = ["COST_FLOOR", "LayerSensitivity", "SearchResult", "label_agreement", "node_macs", "sensitivity_search"]

def label_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Percent of pixels whose argmax class agrees (N×C×H×W logits, or N×H×W labels)."""
    a = labels_of(reference) if reference.ndim == 4 else reference
    b = labels_of(candidate) if candidate.ndim == 4 else candidate
    return 100.0 * float((a == b).mean())


def _session(proto: Any, threads: int | None = None) -> Any:
    from ..ort_session import create_session

    return create_session(proto.SerializeToString(), threads=threads)


def _run_all(session: Any, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    name = session.get_inputs()[0].name
    return [session.run(None, {name: b})[0] for b in batches]


@dataclass
class LayerSensitivity:
    node: str
    op_type: str
    score: float  # normalised logit error when only this block/layer is quantized (higher = more sensitive)
    agreement: float  # percent, only this block/layer quantized
    mac_share: float = 0.0  # fraction of the graph's multiply-accumulates in this block/layer


@dataclass
class SearchResult:
    fp32_nodes: dict[str, str]  # node -> why it stayed fp32
    agreement: float  # percent, on the search images, with fp32_nodes kept
    target: float
    met: bool
    sensitivities: list[LayerSensitivity]
    trials: list[dict]  # every (k, agreement) the search measured
    seconds: float
    granularity: str = "layer"

    def to_dict(self) -> dict:
        return asdict(self)


def node_macs(model: Any) -> dict[str, float]:
    """Multiply-accumulates of each Conv/MatMul (elements for Add/MaxPool/Relu) of a
    shape-inferred graph: the cost model that lets the search prefer cheap fp32 blocks."""
    proto = load_proto(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
    weights = {i.name: list(i.dims) for i in proto.graph.initializer}
    macs: dict[str, float] = {}
    for n in proto.graph.node:
        out = shapes.get(n.output[0]) or []
        size = float(np.prod(out)) if out and all(out) else 0.0
        if n.op_type == "Conv" and n.input[1] in weights:
            w = weights[n.input[1]]
            macs[n.name] = size * float(np.prod(w[1:]))
        elif n.op_type == "MatMul":
            a = shapes.get(n.input[0]) or weights.get(n.input[0]) or [0]
            macs[n.name] = size * float(a[-1])
        else:
            macs[n.name] = size
    return macs


COST_FLOOR = 0.01  # a block's cost in the search ranking never counts as less than 1% of the MACs


def sensitivity_search(
    model: Any,
    cache: Any,  # a calibration.CalibrationCache
    batches: Sequence[np.ndarray],
    *,
    target_agreement: float,
    rank_batches: int = 2,
    target: str = "cpu",
    op_types: Sequence[str] = QUANT_OP_TYPES,
    always_fp32: Sequence[str] = (),
    granularity: str = "block",
    finish: Callable[[Any], Any] | None = None,
    delta: float | None = None,
    reduce_range: bool = False,
    threads: int | None = None,
    progress: StageProgress | None = None,
) -> SearchResult:
    """A small, cheap set of blocks (or layers) to keep in fp32 so that INT8 agrees with fp32 on ``batches``
    (the calibration images) at least ``target_agreement`` percent (mean over the batches).

    ``granularity="block"`` (default) decides per residual block / top-level module
    (``block_of``), ``"layer"`` per node. Candidates are ranked by sensitivity per unit of cost
    (``score / (MAC share + 1%)``, see ``node_macs``), so that of two blocks that fix as much, the
    cheap one stays fp32. Blocks, because ONNX Runtime pays a Q/DQ transition
    at every border of an fp32 island: measured on the shipped checkpoint at 1024×2048, the
    per-layer search kept 62 scattered layers fp32 and the engine ran 0.92× ORT fp32, while a
    contiguous fp32 low-resolution branch (79 layers, 99.54% on held-out scenes) ran 1.28×.

    1. Quantize everything; if that meets the target, nothing stays fp32.
    2. Otherwise measure each candidate's sensitivity on the first ``rank_batches`` batches:
       quantize *only* that block and take the mean squared logit error relative to the fp32
       logits' variance (continuous, so it ranks blocks that flip no pixel on their own).
       This is the expensive step: one graph build and run per candidate.
    3. Keep the k highest-ranked candidates in fp32 for the smallest k that meets the target on
       *all* ``batches``: doubling k until it does, then bisecting (agreement grows about
       monotonically with k). Judging k on more images than the ranking keeps the claim from
       resting on the two images the ranking saw.

    ``finish``: applied to every trial graph after Q/DQ insertion (the build passes the GPTQ weight
    rounding, so that the search judges the graphs it will ship). ``delta``: judge agreement within
    ``delta`` logit (``metrics.within_delta``, what ``check`` gates INT8 on) instead of raw agreement.
    """
    if granularity not in ("block", "layer"):
        raise IcnetDeployError(f"granularity must be 'block' or 'layer', got {granularity!r}")
    started = time.perf_counter()
    say = progress or no_progress
    proto = load_proto(model)
    ops = {n.name: n.op_type for n in proto.graph.node}
    proto = with_shapes(proto)  # once, not per trial
    layer_ops = [op for op in op_types if op not in FOLLOWERS]
    fixed_set = set(always_fp32)
    layers = [n for n in quantizable_nodes(proto, layer_ops) if n not in fixed_set]
    groups: dict[str, list[str]] = {}
    for n in layers:
        groups.setdefault(block_of(n) if granularity == "block" else n, []).append(n)
    batches = list(batches)
    ranking = batches[:max(1, rank_batches)]
    session = _session(proto, threads)
    name_in = session.get_inputs()[0].name
    # per image, the classes each pixel may take and still agree: the reference's own (raw), or every
    # class within delta of its best (a C×H×W mask; bool, so 19 bytes a pixel rather than 76)
    accepted = []
    for b in batches:
        ref = session.run(None, {name_in: b})[0][0]
        accepted.append(labels_of(ref[None])[0] if delta is None else ref >= ref.max(axis=0) - np.float32(delta))
    ref_logits = _run_all(session, ranking)  # full logits only where the logit error is needed
    del session
    ref_var = float(np.mean([r.var() for r in ref_logits])) or 1.0
    trials: list[dict] = []

    def agrees(labels: np.ndarray, ok: np.ndarray) -> float:
        if delta is None:
            return 100.0 * float((labels == ok).mean())
        return 100.0 * float(np.take_along_axis(ok, labels[None].astype(np.intp), axis=0).mean())

    def agreement(q: Any) -> float:
        s = _session(q, threads)
        return float(np.mean([agrees(labels_of(s.run(None, {name_in: b})[0])[0], ok)
                              for b, ok in zip(batches, accepted)]))

    def trial_graph(exclude: Iterable[str]) -> Any:
        q = quantize_qdq(proto, cache, target=target, exclude=list(exclude), op_types=op_types,
                         reduce_range=reduce_range)
        return finish(q) if finish is not None else q

    def sensitivity(exclude: Iterable[str]) -> tuple[float, float]:
        q = trial_graph(exclude)
        outs = _run_all(_session(q, threads), ranking)
        agree = float(np.mean([label_agreement(r, o) for r, o in zip(ref_logits, outs)]))
        err = float(np.mean([np.mean((r - o) ** 2) for r, o in zip(ref_logits, outs)])) / ref_var
        return agree, err

    def measure(exclude: Iterable[str]) -> tuple[float, float]:
        return agreement(trial_graph(exclude)), 0.0

    def result(keep: dict[str, str], agree: float, sens: list[LayerSensitivity]) -> SearchResult:
        return SearchResult(fp32_nodes=keep, agreement=agree, target=target_agreement,
                            met=agree >= target_agreement, sensitivities=sens, trials=trials,
                            seconds=round(time.perf_counter() - started, 1), granularity=granularity)

    fixed = {n: "kept fp32 on request" for n in always_fp32}
    say("search: all layers int8", 0, 1)
    agree_all, _ = measure(fixed)
    say("search: all layers int8", 1, 1)
    trials.append({"fp32_layers": len(fixed), "agreement": agree_all})
    if agree_all >= target_agreement:
        return result(fixed, agree_all, [])

    stage = f"search: {granularity} sensitivity"
    sens: list[LayerSensitivity] = []
    for i, (group, members) in enumerate(groups.items()):
        say(stage, i, len(groups))
        quantized = set(members)
        others = [n for n in layers if n not in quantized] + list(always_fp32)
        agree, err = sensitivity(others)
        op = ops[members[0]] if len(members) == 1 else f"{len(members)} layers"
        sens.append(LayerSensitivity(node=group, op_type=op, score=err, agreement=agree))
    say(stage, len(groups), len(groups))
    macs = node_macs(proto)
    total = sum(macs.get(n, 0.0) for n in layers) or 1.0
    share = {g: sum(macs.get(n, 0.0) for n in members) / total for g, members in groups.items()}
    for s in sens:
        s.mac_share = round(share[s.node], 5)
    ranked = sorted(sens, key=lambda s: s.score / (share[s.node] + COST_FLOOR), reverse=True)

    def members_of(k: int) -> list[str]:
        return [n for s in ranked[:k] for n in groups[s.node]]

    cache_k: dict[int, float] = {0: agree_all}

    def agreement_at(k: int) -> float:
        if k not in cache_k:
            say("search: smallest fp32 set", len(trials) - 1, len(trials))
            kept = members_of(k)
            cache_k[k] = measure(kept + list(always_fp32))[0]
            trials.append({"fp32_layers": len(kept) + len(fixed), f"fp32_{granularity}s": k,
                           "agreement": cache_k[k]})
            say("search: smallest fp32 set", len(trials) - 1, len(trials) - 1)
        return cache_k[k]

    lo, hi = 0, 1  # invariant: agreement_at(lo) < target
    while hi < len(ranked) and agreement_at(hi) < target_agreement:
        lo, hi = hi, min(2 * hi, len(ranked))
    if agreement_at(hi) < target_agreement:  # even everything in fp32 does not (cannot happen but say so)
        keep = dict(fixed) | {n: f"sensitivity {s.score:.2e}" for s in ranked for n in groups[s.node]}
        return result(keep, agreement_at(hi), ranked)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if agreement_at(mid) >= target_agreement:
            hi = mid
        else:
            lo = mid
    keep = dict(fixed)
    for rank, s in enumerate(ranked[:hi], 1):
        what = f"block {s.node} " if granularity == "block" else ""
        for n in groups[s.node]:
            keep[n] = (f"{what}rank {rank}/{len(ranked)}: alone it costs {s.score:.2e} relative logit MSE, "
                       f"{100 - s.agreement:.3f}% pixels; {100 * share[s.node]:.1f}% of the MACs")
    return result(keep, agreement_at(hi), ranked)
