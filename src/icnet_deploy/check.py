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

Metrics per set: pixel agreement (pooled over all pixels, and the worst image), mIoU of the
engine's labels against the eager labels, per-class IoU (against eager, and the IoU delta against
ground truth), max/mean |Δlogit| when the engine outputs logits, and with ground truth the mIoU of
each against it (at the image's own size, both mapped back the same way) and the drop. Not gated,
to explain a low agreement: the share of *near ties* (pixels whose two best eager logits are within
``NEAR_TIE_LOGIT``) and the agreement on the other pixels. On the photographs a quarter of the
pixels are within 0.5 and ~5% within 0.1, against ~0.3% on the scenes: that is where INT8 flips.

The label path: ``infer`` and ``bench`` take labels from ``Runner.infer_for_labels`` (the logits
before the final upsample) and the UpsampleArgmax op (``plugins.upsample_argmax``: the C kernel or
the numpy reference; the Triton kernel on CUDA runners), not from the full output gated above; on the first image of each set its labels must agree with the full output's on at least
``LABEL_PATH_MIN_AGREEMENT`` percent of the pixels (exact for ONNX Runtime and eager; TensorRT's own
Resize kernel may differ at ties), so the gate covers what ``infer`` writes.

Default thresholds by the manifest's precision (``DEFAULT_THRESHOLDS``): fp32 agreement ≥ 99.99 %,
fp16 ≥ 99.9 %, int8 ≥ 99.5 % (≥ 99 % on the real photographs) and mIoU drop ≤ 0.5 points; each can
be overridden. The agreement threshold applies to each set's pooled agreement; the mIoU drop to
each set with labels. INT8's photo threshold is the build-engine issue's acceptance bar: the
photographs (a cat, a cup, an astronaut, a rocket) are far outside the street scenes the model
knows, its class scores there are close, and rounding flips more of them.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, IcnetDeployError
from .metrics import ConfusionMatrix
from .upsample import argmax_classes

__all__ = ["check", "CheckReport", "Thresholds", "default_thresholds", "DEFAULT_THRESHOLDS", "HELDOUT_SEED",
           "LABEL_PATH_MIN_AGREEMENT", "heldout_scenes", "write_junit"]

HELDOUT_SEED = 950_000
LABEL_PATH_MIN_AGREEMENT = 99.99  # percent: the label path against the full output, same engine
DEFAULT_DYNAMIC_SIZE = (512, 1024)
# precision -> (min agreement %, max mIoU drop in points or None, max |Δlogit| or None,
#               min agreement % on the real photographs or None = the same as the others)
DEFAULT_THRESHOLDS: dict[str, tuple[float, float | None, float | None, float | None]] = {
    "fp32": (99.99, None, None, None),
    "fp16": (99.9, None, None, None),
    "int8": (99.5, 0.5, None, 99.0),
}
PHOTOS_SET = "photos"
# logits: a pixel whose two best eager class scores are closer than this is a near tie (diagnostic)
NEAR_TIE_LOGIT = 0.1

Progress = Callable[[str], None]
Sample = tuple[str, np.ndarray, "np.ndarray | None"]  # (name, uint8 H×W×3, train ids H×W or None)


@dataclass(frozen=True)
class Thresholds:
    min_agreement: float  # percent, per image set (pooled pixels)
    max_miou_drop: float | None = None  # mIoU points (eager − engine) against ground truth
    max_logit_error: float | None = None  # max |Δlogit| against eager
    min_agreement_photos: float | None = None  # percent, the real-photo set (None: min_agreement)

    def agreement_for(self, image_set: str) -> float:
        if image_set == PHOTOS_SET and self.min_agreement_photos is not None:
            return self.min_agreement_photos
        return self.min_agreement


def default_thresholds(precision: str, min_agreement: float | None = None, max_miou_drop: float | None = None,
                       max_logit_error: float | None = None, min_agreement_photos: float | None = None) -> Thresholds:
    """The precision's defaults, with any given value overriding its default. A given
    ``min_agreement`` applies to the photos too unless ``min_agreement_photos`` is given."""
    if precision not in DEFAULT_THRESHOLDS:
        raise IcnetDeployError(f"no default thresholds for precision {precision!r}")
    agree, drop, logit, photos = DEFAULT_THRESHOLDS[precision]
    if min_agreement_photos is not None:
        photos = float(min_agreement_photos)
    elif min_agreement is not None:
        photos = None
    return Thresholds(
        min_agreement=agree if min_agreement is None else float(min_agreement),
        max_miou_drop=drop if max_miou_drop is None else float(max_miou_drop),
        max_logit_error=logit if max_logit_error is None else float(max_logit_error),
        min_agreement_photos=photos,
    )


# --------------------------------------------------------------------------------------------
# image sets
# --------------------------------------------------------------------------------------------
def heldout_scenes(count: int, height: int, width: int, seed: int = HELDOUT_SEED) -> list[Sample]:
    """``count`` generated scenes with their labels (deterministic in the seeds)."""
    from .data.synthetic import generate_scene

    out = []
    for i in range(count):
        image, labels = generate_scene(seed + i, height, width)
        out.append((f"scene-{seed + i}", image, labels))
    return out


def _photos() -> list[Sample]:
    from .assets import real_photos
    from .data.folders import read_rgb

    return [(p.name, read_rgb(p), None) for p in real_photos()]


_LABEL_PATTERNS = (
    ("{stem}_gtFine_labelTrainIds.png", True), ("{stem}_labelTrainIds.png", True),
    ("{stem}_gtFine_labelIds.png", False), ("{stem}_labelIds.png", False), ("{stem}.png", True),
)


def _find_label(labels_dir: Path, rel: Path) -> tuple[Path, bool] | None:
    stem = rel.stem.removesuffix("_leftImg8bit")
    for pattern, train in _LABEL_PATTERNS:
        candidate = labels_dir / rel.parent / pattern.format(stem=stem)
        if candidate.is_file():
            return candidate, train
    return None


def _folder(images_dir: Path, labels_dir: Path | None) -> list[Sample]:
    from .data.folders import _read_ids, list_images, read_rgb, read_train_ids
    from .data.labels import label_ids_to_train_ids

    out = []
    for path in list_images(images_dir):
        rel = path.relative_to(images_dir)
        image = read_rgb(path)
        labels = None
        if labels_dir is not None:
            found = _find_label(labels_dir, rel)
            if found is None:
                raise DataError(f"{path}: no label in {labels_dir} (looked for {rel.parent / (rel.stem + '_labelTrainIds.png')}, "
                                "…_gtFine_labelTrainIds.png, …_labelIds.png)")
            lp, train = found
            labels = read_train_ids(lp) if train else label_ids_to_train_ids(_read_ids(lp, "label"))
            if labels.shape != image.shape[:2]:
                raise DataError(f"{lp}: label size {labels.shape[1]}×{labels.shape[0]} differs from image "
                                f"{image.shape[1]}×{image.shape[0]} (W×H)")
        out.append((str(rel), image, labels))
    return out


def _dataset(root: Path, split: str) -> list[Sample]:
    from .data.folders import CityscapesDataset

    ds = CityscapesDataset(root, split)
    return [(p.name, *ds[i]) for i, p in enumerate(ds.image_paths)]


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

    @property
    def passed(self) -> bool:
        return all(c["passed"] for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [c["message"] for c in self.checks if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed, "failures": self.failures}

    def to_junit(self) -> ET.Element:
        """JUnit XML: one testsuite, one testcase per (image set, metric); failures carry the message."""
        name = f"icnet-deploy check {self.engine.get('name', '')}".strip()
        suite = ET.Element("testsuite", name=name, tests=str(len(self.checks)),
                           failures=str(sum(not c["passed"] for c in self.checks)), errors="0", skipped="0",
                           time=f"{self.seconds:.3f}")
        props = ET.SubElement(suite, "properties")
        for key, value in (("engine", self.engine.get("artifact") or self.engine.get("name")), ("precision", self.precision),
                           ("provider", self.engine.get("provider")), ("reference", self.reference.get("checkpoint"))):
            ET.SubElement(props, "property", name=key, value=str(value))
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"parity.{c['set']}", name=c["metric"], time="0")
            if not c["passed"]:
                failure = ET.SubElement(case, "failure", message=c["message"], type="ParityFailure")
                failure.text = c["message"]
            out = ET.SubElement(case, "system-out")
            out.text = f"value={c['value']} threshold={c['threshold']}"
        return suite


def write_junit(report: CheckReport, path: str | Path) -> None:
    """Write ``report.to_junit()`` (with an XML declaration) atomically to ``path``."""
    from .fileio import atomic_write_bytes

    root = ET.Element("testsuites")
    root.append(report.to_junit())
    ET.indent(root)
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
class _SetStats:
    """Accumulates one image set's parity and accuracy."""

    def __init__(self, name: str, num_classes: int) -> None:
        self.name, self.num_classes = name, num_classes
        self.vs_eager = ConfusionMatrix(num_classes)  # eager labels as "truth"
        self.gt_engine = ConfusionMatrix(num_classes)
        self.gt_eager = ConfusionMatrix(num_classes)
        self.agree = self.pixels = 0
        self.images: list[dict] = []
        self.max_logit = 0.0
        self.logit_sum = 0.0
        self.logit_count = 0
        self.has_logits = False
        self.has_gt = False
        self.near_ties = 0
        self.agree_beyond_ties = 0
        self.label_path: dict[str, Any] | None = None

    def add_label_path(self, name: str, early: np.ndarray, full_labels: np.ndarray, output_kind: str, *,
                       threads: int | None = None, device_labels: np.ndarray | None = None) -> None:
        """Compare the labels of ``Runner.infer_for_labels`` (``early``) with the full output's (``add``'s
        return value), at the engine's size; ``device_labels``: those ``Runner.predict_labels`` made on the
        GPU instead (runners whose labels are ``labels_on_device``)."""
        from .infer import to_labels
        from .plugins import label_path

        if device_labels is not None:
            labels, how = device_labels, "UpsampleArgmax Triton kernel (GPU)"
        else:
            labels, how = to_labels(early, output_kind, full_labels.shape, threads=threads)[0], \
                f"UpsampleArgmax {label_path()['implementation']} (CPU)"
        self.label_path = {"image": name, "output_shape": list(early.shape), "implementation": how,
                           "agreement_pct": 100.0 * float((labels == full_labels).mean())}

    def add(self, name: str, eng_out: np.ndarray, ref_logits: np.ndarray, output_kind: str,
            size: tuple[int, int], truth: np.ndarray | None) -> np.ndarray:
        """Add one image; returns the engine's labels at its own size."""
        from .infer import to_labels

        ref_labels = argmax_classes(ref_logits)
        eng_labels = argmax_classes(eng_out) if output_kind == "logits" else eng_out.astype(np.uint8)
        if eng_labels.shape != ref_labels.shape:
            raise IcnetDeployError(f"engine output {eng_labels.shape} and eager output {ref_labels.shape} differ in size")
        same = eng_labels == ref_labels
        agree = int(same.sum())
        row: dict[str, Any] = {"image": name, "size": list(size), "agreement_pct": 100.0 * agree / ref_labels.size}
        self.agree += agree
        self.pixels += ref_labels.size
        self.vs_eager.update(ref_labels, eng_labels)
        near = _near_ties(ref_logits)
        n_near = int(near.sum())
        beyond = int(same[~near].sum())
        row["near_tie_pct"] = 100.0 * n_near / ref_labels.size
        row["agreement_beyond_ties_pct"] = 100.0 * beyond / (ref_labels.size - n_near) if n_near < ref_labels.size else 100.0
        self.near_ties += n_near
        self.agree_beyond_ties += beyond
        if output_kind == "logits":
            diff = np.abs(eng_out.astype(np.float32) - ref_logits)
            row["max_abs_logit_error"] = float(diff.max())
            self.max_logit = max(self.max_logit, float(diff.max()))
            self.logit_sum += float(diff.sum())
            self.logit_count += diff.size
            self.has_logits = True
        if truth is not None:
            self.has_gt = True
            eng_full, _ = to_labels(eng_out, output_kind, size)
            ref_full, _ = to_labels(ref_logits, "logits", size)
            self.gt_engine.update(truth, eng_full)
            self.gt_eager.update(truth, ref_full)
        self.images.append(row)
        return eng_labels

    def result(self) -> dict[str, Any]:
        vs = self.vs_eager.scores()
        out: dict[str, Any] = {
            "set": self.name, "images": len(self.images), "pixels": self.pixels,
            "agreement_pct": 100.0 * self.agree / self.pixels if self.pixels else 100.0,
            "worst_image": min(self.images, key=lambda r: r["agreement_pct"]) if self.images else None,
            "miou_vs_eager": vs.miou, "per_image": self.images,
            "near_tie_logit": NEAR_TIE_LOGIT,
            "near_tie_pct": 100.0 * self.near_ties / self.pixels if self.pixels else 0.0,
            "agreement_beyond_ties_pct": (100.0 * self.agree_beyond_ties / (self.pixels - self.near_ties)
                                          if self.pixels > self.near_ties else 100.0),
        }
        if self.label_path is not None:
            out["label_path"] = self.label_path
        per_class: dict[str, dict] = {n: {"iou_vs_eager": v} for n, v in vs.per_class.items()}
        if self.has_logits:
            out["max_abs_logit_error"] = self.max_logit
            out["mean_abs_logit_error"] = self.logit_sum / max(1, self.logit_count)
        if self.has_gt:
            eng, ref = self.gt_engine.scores(), self.gt_eager.scores()
            out["ground_truth"] = {"engine_miou": eng.miou, "eager_miou": ref.miou, "miou_drop": ref.miou - eng.miou,
                                   "engine_pixel_accuracy": eng.pixel_accuracy, "eager_pixel_accuracy": ref.pixel_accuracy}
            for n in per_class:
                e, r = eng.per_class.get(n), ref.per_class.get(n)
                per_class[n].update(engine_iou=e, eager_iou=r, iou_delta=None if e is None or r is None else e - r)
        out["per_class"] = per_class
        return out


def _near_ties(logits: np.ndarray) -> np.ndarray:
    """H×W mask of the pixels whose two best class scores (C×H×W) are within ``NEAR_TIE_LOGIT``:
    any rounding may flip them, so they say how much agreement a precision can hope for."""
    if logits.shape[0] < 2:
        return np.zeros(logits.shape[1:], dtype=bool)
    top2 = np.partition(logits, logits.shape[0] - 2, axis=0)[-2:]
    return (top2[1] - top2[0]) < NEAR_TIE_LOGIT


def _checks(sets: list[dict], th: Thresholds) -> list[dict]:
    out = []
    for s in sets:
        name = s["set"]
        v = s["agreement_pct"]
        worst = s["worst_image"]
        detail = f" (worst image {worst['image']}: {worst['agreement_pct']:.4f}%)" if worst else ""
        need = th.agreement_for(name)
        out.append({"set": name, "metric": "pixel_agreement", "value": v, "threshold": need,
                    "passed": v >= need,
                    "message": f"{name}: pixel agreement {v:.4f}% {'≥' if v >= need else '<'} {need}%{detail}"})
        if th.max_miou_drop is not None and "ground_truth" in s:
            d = s["ground_truth"]["miou_drop"]
            out.append({"set": name, "metric": "miou_drop", "value": d, "threshold": th.max_miou_drop,
                        "passed": d <= th.max_miou_drop,
                        "message": f"{name}: mIoU drop {d:.3f} points {'≤' if d <= th.max_miou_drop else '>'} "
                                   f"{th.max_miou_drop} (eager {s['ground_truth']['eager_miou']:.2f}%, "
                                   f"engine {s['ground_truth']['engine_miou']:.2f}%)"})
        if "label_path" in s:
            lp = s["label_path"]
            ok = lp["agreement_pct"] >= LABEL_PATH_MIN_AGREEMENT
            out.append({"set": name, "metric": "label_path_agreement", "value": lp["agreement_pct"],
                        "threshold": LABEL_PATH_MIN_AGREEMENT, "passed": ok,
                        "message": f"{name}: labels of infer's path (output {'×'.join(map(str, lp['output_shape']))}"
                                   f"{', ' + lp['implementation'] if lp.get('implementation') else ''}) "
                                   f"agree with the full output's {lp['agreement_pct']:.4f}% "
                                   f"{'≥' if ok else '<'} {LABEL_PATH_MIN_AGREEMENT}% ({lp['image']})"})
        if th.max_logit_error is not None and "max_abs_logit_error" in s:
            e = s["max_abs_logit_error"]
            out.append({"set": name, "metric": "max_logit_error", "value": e, "threshold": th.max_logit_error,
                        "passed": e <= th.max_logit_error,
                        "message": f"{name}: max |Δlogit| {e:.3g} {'≤' if e <= th.max_logit_error else '>'} {th.max_logit_error}"})
    return out


def check(
    engine: str | Path,
    *,
    checkpoint: str | Path | None = None,
    images_dir: str | Path | None = None,
    labels_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    split: str = "val",
    count: int = 4,
    size: tuple[int, int] | None = None,
    photos: bool = True,
    min_agreement: float | None = None,
    max_miou_drop: float | None = None,
    max_logit_error: float | None = None,
    min_agreement_photos: float | None = None,
    device: str = "cpu",
    provider: str | None = None,
    threads: int | None = None,
    layerwise: bool = False,
    reference: str | Path | None = None,
    layerwise_tolerance: float | None = None,
    int8_breakdown: bool = False,
    progress: Progress | None = None,
) -> CheckReport:
    """Compare ``engine`` (an artifact path) with its eager fp32 model; see the module docstring.

    ``checkpoint``: the eager weights (must match the manifest's sha256; default: the manifest's
    own checkpoint, else the shipped one). ``count``/``size``: generated scenes and their size
    (dynamic engines; static engines use their own). ``layerwise``: also locate the first
    diverging tensor against the fp32 ``reference`` ONNX (default: the engine's parent, see
    ``layerwise.find_reference``). ``int8_breakdown``: also split an INT8 engine's disagreement with
    that reference into weight rounding, range clipping and activation rounding, on the same images
    (``int8_breakdown.py``). Raises ``IcnetDeployError`` for bad arguments, files or a
    checkpoint mismatch; parity failures are in the report.
    """
    from .backends.loader import eager_reference, load
    from .infer import prepare

    say = progress or (lambda _m: None)
    started = time.perf_counter()
    if count < 0:
        raise IcnetDeployError(f"count must be ≥ 0, got {count}")
    if labels_dir is not None and images_dir is None:
        raise IcnetDeployError("--labels needs --images")
    for value, what in ((images_dir, "images"), (labels_dir, "labels"), (data_dir, "data")):
        if value is not None and not Path(value).is_dir():
            raise DataError(f"{value}: {what} folder not found")
    from .backends.loader import CHECKPOINT_SUFFIXES
    from .manifest import read_manifest

    if str(engine) == "eager" or Path(engine).suffix.lower() in CHECKPOINT_SUFFIXES:
        raise IcnetDeployError(f"{engine}: is a checkpoint, not an engine; check compares an engine with its checkpoint")
    runner = load(engine, device=device, provider=provider, threads=threads)
    manifest = runner.manifest if runner.manifest is not None else read_manifest(engine)
    thresholds = default_thresholds(manifest.precision, min_agreement, max_miou_drop, max_logit_error,
                                    min_agreement_photos)
    eager = eager_reference(manifest, checkpoint, engine, strict=True, device=device, threads=threads)
    # the fp32 parent, found (and the engine's kind checked) once and before the slow work
    ref_path = _fp32_reference(engine, manifest, reference, layerwise, int8_breakdown)
    breakdown = None
    if int8_breakdown:
        from .int8_breakdown import Int8Breakdown

        breakdown = Int8Breakdown(engine, ref_path, threads=threads)

    say("loading image sets")
    sets: list[tuple[str, list[Sample]]] = []
    if images_dir is not None:
        sets.append(("images", _folder(Path(images_dir), Path(labels_dir) if labels_dir else None)))
    if data_dir is not None:
        sets.append(("data", _dataset(Path(data_dir), split)))
    if not sets:
        h, w = manifest.input_hw or tuple(size or DEFAULT_DYNAMIC_SIZE)
        if count:
            sets.append(("generated", heldout_scenes(count, h, w)))
        if photos:
            sets.append(("photos", _photos()))
    if not any(samples for _, samples in sets):
        raise IcnetDeployError("no images to check on (count 0 and no photos)")

    results = []
    notes: list[str] = []
    first_x: np.ndarray | None = None
    with runner, eager:
        for set_name, samples in sets:
            stats = _SetStats(set_name, manifest.num_classes)
            for name, image, truth in samples:
                say(f"{set_name}: {name}")
                x = prepare(runner, image)
                if first_x is None:
                    first_x = x
                xe = np.repeat(x, runner.batch_size, axis=0) if runner.batch_size and runner.batch_size > 1 else x
                eng_out = runner.infer(xe)[0]
                ref_logits = eager.infer(x)[0]
                eng_labels = stats.add(name, eng_out, ref_logits, runner.output_kind, image.shape[:2], truth)
                if breakdown is not None:
                    say(f"int8 breakdown: {set_name}: {name}")
                    breakdown.add(set_name, xe)
                if stats.label_path is None:  # once per set: the path infer takes gives the same labels
                    device = runner.predict_labels(xe, eng_labels.shape)[0] if runner.labels_on_device else None
                    stats.add_label_path(name, runner.infer_for_labels(xe)[0], eng_labels, runner.output_kind,
                                         threads=runner.threads, device_labels=device)
            if samples:
                results.append(stats.result())
        engine_info, eager_info = runner.describe(), eager.describe()
    eager_info["checkpoint"] = str(getattr(eager, "_checkpoint", None))
    eager_info["checkpoint_sha256"] = manifest.checkpoint_sha256

    layer_report = None
    if layerwise:
        from .layerwise import compare_layers

        say(f"layerwise: {engine} vs {ref_path}")
        layer_report = compare_layers(engine, ref_path, first_x, tolerance=layerwise_tolerance,
                                      precision=manifest.precision, threads=threads).to_dict()
    return CheckReport(
        engine=engine_info, reference=eager_info, precision=manifest.precision, thresholds=asdict(thresholds),
        sets=results, checks=_checks(results, thresholds), seconds=round(time.perf_counter() - started, 2),
        layerwise=layer_report, int8_breakdown=breakdown.result() if breakdown is not None else None, notes=notes,
    )



def _fp32_reference(engine: str | Path, manifest: Any, reference: str | Path | None, layerwise: bool,
                    int8_breakdown: bool) -> Path | None:
    """The fp32 ONNX that ``--layerwise`` / ``--int8-breakdown`` compare with (``reference`` or the
    engine's parent, ``layerwise.find_reference``); None when neither is asked for."""
    from .layerwise import find_reference

    if not (layerwise or int8_breakdown):
        return None
    if manifest.format != "onnx":
        flag = "--layerwise" if layerwise else "--int8-breakdown"
        raise IcnetDeployError(f"{engine}: {flag} needs an ONNX engine (this is {manifest.format})")
    if int8_breakdown and manifest.precision != "int8":
        raise IcnetDeployError(f"{engine}: --int8-breakdown needs an INT8 ONNX engine "
                               f"(this is {manifest.precision} {manifest.format})")
    return Path(reference) if reference else find_reference(engine, manifest)
