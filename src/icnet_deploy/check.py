"""The CI parity gate: an engine against the eager model it was built from, on the same inputs.

``check("build/icnet_int8.onnx")`` runs the engine and the eager fp32 model — the checkpoint its
manifest names, refused unless the sha256 matches — on the same preprocessed batches, and returns a
``CheckReport`` (it never raises on a parity failure: ``report.passed`` is the verdict; the CLI
maps it to exit 0/1).

Image sets (each a separate group of metrics and JUnit test cases):

* ``generated`` — ``count`` held-out street scenes (seeds 950000, 950001, … — disjoint from the
  training (0…), validation (800000…), calibration (700000…) and export-verification (900000…)
  seeds) at the engine's input size (``size`` for dynamic engines), with their exact labels;
* ``photos`` — the shipped real photographs (``assets.real_photos()``), no labels;
* ``images`` — ``images_dir`` (recursive), with labels from ``labels_dir`` when given;
* ``data`` — a Cityscapes-layout dataset root (``data_dir``, split ``split``) with its labels.

``images_dir``/``data_dir`` replace the default sets. Both runners see the *same* float32 batch (the
engine's input size), so parity measures the engine, not two preprocessings.

Metrics per set and per image (``compare.SetStats``): raw pixel agreement, agreement within δ logit,
near ties, mIoU of the engine's labels against the eager labels, max/mean |Δlogit| when the engine
outputs logits, and with ground truth the mIoU and per-class IoU of each against it (at the image's
own size, both mapped back the same way) and the drops.

The label path: ``infer`` and ``bench`` take labels from ``Runner.infer_for_labels`` (the logits
before the final upsample) and the UpsampleArgmax op (``plugins.upsample_argmax``: the C kernel or
the numpy reference; the Triton kernel on CUDA runners), not from the full output gated above; on the first image of each set its labels must agree with the full output's on at least
``LABEL_PATH_MIN_AGREEMENT`` percent of the pixels (exact for ONNX Runtime and eager; TensorRT's own
Resize kernel may differ at ties), so the gate covers what ``infer`` writes.

The gate: ``compare.DEFAULT_THRESHOLDS`` by the manifest's precision (fp32 and fp16 by raw
agreement; INT8 by agreement within δ, mIoU and per-class IoU drops on labelled sets and a raw
floor on unlabelled ones; see ``compare``), each threshold overridable.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .compare import (DEFAULT_THRESHOLDS, LABEL_PATH_MIN_AGREEMENT, SetStats, Thresholds, default_thresholds, gate,
                      gate_passed)
from .data import samples as image_sets
from .errors import DataError, IcnetDeployError

__all__ = ["check", "CheckReport", "Thresholds", "default_thresholds", "DEFAULT_THRESHOLDS", "HELDOUT_COUNT",
           "LABEL_PATH_MIN_AGREEMENT", "parity_verdict", "write_junit"]

HELDOUT_COUNT = 8  # generated scenes checked by default
DEFAULT_DYNAMIC_SIZE = (512, 1024)

Progress = Callable[[str], None]
# (image set, image name, uint8 H×W×3 image, eager logits C×h×w, engine labels h×w): see ``check(observe=…)``
Observer = Callable[[str, str, np.ndarray, np.ndarray, np.ndarray], None]


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------
@dataclass
class CheckReport:
    """Parity of an engine against eager; ``passed`` is the verdict (see ``checks`` for each)."""

    engine: dict
    reference: dict
    precision: str
    thresholds: dict
    sets: list[dict]
    checks: list[dict]  # {"set", "metric", "value", "threshold", "passed", "message"}
    seconds: float
    layerwise: dict | None = None
    int8_breakdown: dict | None = None
    notes: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)  # machine.describe_machine(): CPU, ISA, threads, GPU, versions

    @property
    def passed(self) -> bool:
        return gate_passed(self.checks)

    @property
    def failures(self) -> list[str]:
        return [c["message"] for c in self.checks if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed, "failures": self.failures}

    def to_junit(self) -> ET.Element:
        """JUnit XML: one testsuite, one testcase per (image set, metric); failures carry the message.
        Each set's agreement test cases list every image's raw and within-δ agreement in their output."""
        name = f"icnet-deploy check {self.engine.get('name', '')}".strip()
        suite = ET.Element("testsuite", name=name, tests=str(len(self.checks)),
                           failures=str(sum(not c["passed"] for c in self.checks)), errors="0", skipped="0",
                           time=f"{self.seconds:.3f}")
        props = ET.SubElement(suite, "properties")
        for key, value in (("engine", self.engine.get("artifact") or self.engine.get("name")), ("precision", self.precision),
                           ("provider", self.engine.get("provider")), ("reference", self.reference.get("checkpoint"))):
            ET.SubElement(props, "property", name=key, value=str(value))
        per_image = {s["set"]: s["per_image"] for s in self.sets}
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"parity.{c['set']}", name=c["metric"], time="0")
            if not c["passed"]:
                failure = ET.SubElement(case, "failure", message=c["message"], type="ParityFailure")
                failure.text = c["message"]
            out = ET.SubElement(case, "system-out")
            out.text = f"value={c['value']} threshold={c['threshold']}"
            if c["metric"] in ("pixel_agreement", "agreement_within_delta"):
                out.text += "".join(
                    f"\n{r['image']}: agreement {r['agreement_pct']:.4f}%, within δ {r['agreement_within_delta_pct']:.4f}%"
                    for r in per_image.get(c["set"], ()))
        return suite


def write_junit(report: CheckReport, path: str | Path) -> None:
    """Write ``report.to_junit()`` (with an XML declaration) atomically to ``path``."""
    from .fileio import atomic_write_bytes

    root = ET.Element("testsuites")
    root.append(report.to_junit())
    ET.indent(root)
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))


@dataclass(frozen=True)
class CheckOptions:
    """What ``check`` compares an engine on, and against which thresholds (see ``check``)."""

    checkpoint: str | Path | None = None
    images_dir: str | Path | None = None
    labels_dir: str | Path | None = None
    data_dir: str | Path | None = None
    split: str = "val"
    count: int = HELDOUT_COUNT
    size: tuple[int, int] | None = None
    photos: bool = True
    thresholds: dict[str, float | None] | None = None
    device: str = "cpu"
    provider: str | None = None
    threads: int | None = None
    layerwise: bool = False
    reference: str | Path | None = None
    layerwise_tolerance: float | None = None
    int8_breakdown: bool = False


def check(
    engine: str | Path,
    options: CheckOptions | None = None,
    *,
    progress: Progress | None = None,
    observe: Observer | None = None,
    **option_fields: Any,
) -> CheckReport:
    """Compare ``engine`` (an artifact path) with its eager fp32 model; see the module docstring.

    ``thresholds``: overrides of the precision's gate, by ``compare.Thresholds`` field name
    (``{"min_within_delta": 99.8}``; None values keep the default).
    ``checkpoint``: the eager weights (must match the manifest's sha256; default: the manifest's
    own checkpoint, else the shipped one). ``count``/``size``: generated scenes and their size
    (dynamic engines; static engines use their own). ``layerwise``: also locate the first
    diverging tensor against the fp32 ``reference`` ONNX (default: the engine's parent, see
    ``layerwise.find_reference``). ``int8_breakdown``: also split an INT8 engine's disagreement with
    that reference into weight rounding, range clipping and activation rounding, on the same images
    (``diagnostics.int8_breakdown``). ``observe``: called after each image with its arrays
    (``report.WorstImages`` keeps the worst few for an HTML report). Raises ``IcnetDeployError``
    for bad arguments, files or a checkpoint mismatch; parity failures are in the report.
    """
    opts = replace(options or CheckOptions(), **option_fields)
    from .backends.loader import eager_reference, load
    from .machine import describe_machine

    say = progress or (lambda _m: None)
    started = time.perf_counter()
    if opts.count < 0:
        raise IcnetDeployError(f"count must be ≥ 0, got {opts.count}")
    if opts.labels_dir is not None and opts.images_dir is None:
        raise IcnetDeployError("--labels needs --images")
    for value, what in ((opts.images_dir, "images"), (opts.labels_dir, "labels"), (opts.data_dir, "data")):
        if value is not None and not Path(value).is_dir():
            raise DataError(f"{value}: {what} folder not found")
    from .backends.loader import CHECKPOINT_SUFFIXES
    from .manifest import read_manifest

    if str(engine) == "eager" or Path(engine).suffix.lower() in CHECKPOINT_SUFFIXES:
        raise IcnetDeployError(f"{engine}: is a checkpoint, not an engine; check compares an engine with its checkpoint")
    runner = load(engine, device=opts.device, provider=opts.provider, threads=opts.threads)
    manifest = runner.manifest if runner.manifest is not None else read_manifest(engine)
    gate_thresholds = default_thresholds(manifest.precision, **dict(opts.thresholds or {}))
    eager = eager_reference(manifest, opts.checkpoint, engine, strict=True, device=opts.device, threads=opts.threads)
    # the fp32 parent, found (and the engine's kind checked) once and before the slow work
    ref_path = _fp32_reference(engine, manifest, opts.reference, opts.layerwise, opts.int8_breakdown)
    breakdown = None
    if opts.int8_breakdown:
        from .diagnostics.int8_breakdown import Int8Breakdown

        breakdown = Int8Breakdown(engine, ref_path, threads=opts.threads)

    say("loading image sets")
    sets: list[tuple[str, list[image_sets.Sample]]] = []
    if opts.images_dir is not None:
        sets.append(("images", image_sets.folder(Path(opts.images_dir), Path(opts.labels_dir) if opts.labels_dir else None)))
    if opts.data_dir is not None:
        sets.append(("data", image_sets.dataset(Path(opts.data_dir), opts.split)))
    if not sets:
        h, w = manifest.input_hw or tuple(opts.size or DEFAULT_DYNAMIC_SIZE)
        if opts.count:
            sets.append(("generated", image_sets.heldout_scenes(opts.count, h, w)))
        if opts.photos:
            sets.append(("photos", image_sets.photos()))
    if not any(samples for _, samples in sets):
        raise IcnetDeployError("no images to check on (count 0 and no photos)")

    results = []
    notes: list[str] = []
    first_x: np.ndarray | None = None
    with runner, eager:
        for set_name, samples in sets:
            stats = SetStats(set_name, manifest.num_classes, gate_thresholds.delta)
            for name, image, truth in samples:
                say(f"{set_name}: {name}")
                x = runner.prepare(image)
                if first_x is None:
                    first_x = x
                xe = np.repeat(x, runner.batch_size, axis=0) if runner.batch_size and runner.batch_size > 1 else x
                eng_out = runner.infer(xe)[0]
                ref_logits = eager.infer(x)[0]
                eng_labels = stats.add(name, eng_out, ref_logits, runner.output_kind, image.shape[:2], truth)
                if observe is not None:
                    observe(set_name, name, image, ref_logits, eng_labels)
                if breakdown is not None:
                    say(f"int8 breakdown: {set_name}: {name}")
                    breakdown.add(set_name, xe)
                if stats.label_path is None:  # once per set: the path infer takes gives the same labels
                    on_gpu = runner.predict_labels(xe, eng_labels.shape)[0] if runner.labels_on_device else None
                    stats.add_label_path(name, runner.infer_for_labels(xe)[0], eng_labels, runner.output_kind,
                                         threads=runner.threads, device_labels=on_gpu)
            if samples:
                results.append(stats.result())
        engine_info, eager_info = runner.describe(), eager.describe()
    eager_info["checkpoint"] = str(getattr(eager, "_checkpoint", None))
    eager_info["checkpoint_sha256"] = manifest.checkpoint_sha256
    engine_info["manifest"] = manifest.to_dict()

    layer_report = None
    if opts.layerwise:
        from .diagnostics.layerwise import compare_layers

        say(f"layerwise: {engine} vs {ref_path}")
        layer_report = compare_layers(engine, ref_path, first_x, tolerance=opts.layerwise_tolerance,
                                      precision=manifest.precision, threads=opts.threads).to_dict()
    return CheckReport(
        engine=engine_info, reference=eager_info, precision=manifest.precision,
        thresholds=asdict(gate_thresholds), sets=results, checks=gate(results, gate_thresholds),
        seconds=round(time.perf_counter() - started, 2),
        layerwise=layer_report, int8_breakdown=breakdown.result() if breakdown is not None else None, notes=notes,
        environment=describe_machine(opts.device),
    )



def _fp32_reference(engine: str | Path, manifest: Any, reference: str | Path | None, layerwise: bool,
                    int8_breakdown: bool) -> Path | None:
    """The fp32 ONNX that ``--layerwise`` / ``--int8-breakdown`` compare with (``reference`` or the
    engine's parent, ``layerwise.find_reference``); None when neither is asked for."""
    from .diagnostics.layerwise import find_reference

    if not (layerwise or int8_breakdown):
        return None
    if manifest.format != "onnx":
        flag = "--layerwise" if layerwise else "--int8-breakdown"
        raise IcnetDeployError(f"{engine}: {flag} needs an ONNX engine (this is {manifest.format})")
    if int8_breakdown and manifest.precision != "int8":
        raise IcnetDeployError(f"{engine}: --int8-breakdown needs an INT8 ONNX engine "
                               f"(this is {manifest.precision} {manifest.format})")
    return Path(reference) if reference else find_reference(engine, manifest)


def parity_verdict(engine: str | Path, **check_options: Any) -> dict[str, Any]:
    """``check``'s verdict on ``engine`` in the few numbers a benchmark table shows: passed, the worst
    set's raw agreement, the lowest agreement within δ, the largest mIoU drop, the failures."""
    report = check(engine, **check_options)
    worst = min(report.sets, key=lambda s: s["agreement_pct"])
    drops = [s["ground_truth"]["miou_drop"] for s in report.sets if "ground_truth" in s]
    return {"passed": report.passed, "agreement_pct": worst["agreement_pct"],
            "agreement_within_delta_pct": min(s["agreement_within_delta_pct"] for s in report.sets),
            "delta_logit": report.thresholds["delta"], "miou_drop": max(drops) if drops else None,
            "failures": report.failures}
