"""Parity of an engine's outputs with a reference's, per image set, and the gate that judges it.

One place for what "the engine agrees with its reference" means; ``check`` (engine vs the eager
checkpoint) and ``build-engine``'s parity at the end of a build (engine vs its fp32 parent) both
accumulate a ``SetStats`` per image set and judge the results with ``gate``.

Metrics, per image and per set (pooled pixels):

* **raw agreement** — the engine's label is the reference's;
* **agreement within δ** (``metrics.within_delta``) — the engine's label is one the reference
  scored within δ logit of its best class. Rounding may flip a pixel whose two best classes the
  reference itself can barely tell apart; it must not pick a class the reference thought clearly
  worse. Engines that output labels only are judged against the reference's logits alike;
* **near ties** — pixels whose two best reference logits are within ``NEAR_TIE_LOGIT`` (not gated:
  they say how much raw agreement any rounding can keep), and the raw agreement on the others;
* max/mean |Δlogit| when the engine outputs logits; with ground truth, each one's mIoU and
  per-class IoU against it, and the drops.

The gate (``Thresholds``; defaults by precision in ``DEFAULT_THRESHOLDS``):

* fp32: raw agreement ≥ 99.99 % on every set; fp16: ≥ 99.9 %.
* int8: on every set, agreement within δ = 0.25 ≥ 99.5 % pooled and ≥ 99.0 % on the worst image;
  on labelled sets raw agreement ≥ 99.5 %, mIoU drop ≤ 0.5 point and no class's IoU drop > 2
  points (among the classes with ≥ 0.1 % of the set's labelled pixels: below that, a handful of
  flipped pixels moves a class's IoU by points); on unlabelled sets (photographs) raw agreement ≥ 97 % — a floor, so a mass of flips
  cannot hide behind the tolerance. Raw agreement alone would judge INT8 by coin tosses: on
  photographs far from the street scenes the model knows, ~20 % of the pixels have their two best
  classes within 0.5 logit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .errors import IcnetDeployError
from .metrics import DEFAULT_DELTA, NEAR_TIE_LOGIT, ConfusionMatrix, near_ties, within_delta
from .upsample import argmax_classes

__all__ = ["SetStats", "Thresholds", "DEFAULT_THRESHOLDS", "LABEL_PATH_MIN_AGREEMENT", "default_thresholds", "gate",
           "gate_passed"]

LABEL_PATH_MIN_AGREEMENT = 99.99  # percent: the label path against the full output, same engine
# a class's IoU drop is gated only where the class holds at least this share of the set's labelled
# pixels: the IoU of a class with a few hundred pixels moves by points when a handful flip
CLASS_IOU_MIN_SHARE = 0.001


@dataclass(frozen=True)
class Thresholds:
    """What an engine must reach against its reference, per image set (percent / points / logits)."""

    min_agreement: float  # raw agreement, pooled: every set, or only labelled sets when the next is set
    min_agreement_unlabelled: float | None = None  # raw agreement floor on sets without labels (None: as above)
    max_miou_drop: float | None = None  # mIoU points (reference − engine) against ground truth
    max_class_iou_drop: float | None = None  # the largest per-class IoU drop against ground truth
    max_logit_error: float | None = None  # max |Δlogit|
    delta: float = DEFAULT_DELTA  # logit tolerance of "agreement within δ" (always reported)
    min_within_delta: float | None = None  # agreement within δ, pooled, every set
    min_within_delta_worst: float | None = None  # agreement within δ on the worst image of every set

    def agreement_for(self, labelled: bool) -> float:
        if not labelled and self.min_agreement_unlabelled is not None:
            return self.min_agreement_unlabelled
        return self.min_agreement


DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(min_agreement=99.99),
    "fp16": Thresholds(min_agreement=99.9),
    "int8": Thresholds(min_agreement=99.5, min_agreement_unlabelled=97.0, max_miou_drop=0.5, max_class_iou_drop=2.0,
                       min_within_delta=99.5, min_within_delta_worst=99.0),
}


def default_thresholds(precision: str, **overrides: float | None) -> Thresholds:
    """The precision's defaults, with every override that is not None replacing its default
    (keyword names are the ``Thresholds`` fields)."""
    if precision not in DEFAULT_THRESHOLDS:
        raise IcnetDeployError(f"no default thresholds for precision {precision!r}")
    known = {f.name for f in fields(Thresholds)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise IcnetDeployError(f"unknown threshold {unknown[0]!r}; use one of {', '.join(sorted(known))}")
    given = {k: float(v) for k, v in overrides.items() if v is not None}
    if given.get("delta", DEFAULT_DELTA) < 0:
        raise IcnetDeployError(f"delta is a logit tolerance ≥ 0, got {given['delta']}")
    return replace(DEFAULT_THRESHOLDS[precision], **given)


class SetStats:
    """Accumulates one image set's parity (and accuracy, with ground truth) of an engine against
    a reference, image by image; ``result()`` is the set's record."""

    def __init__(self, name: str, num_classes: int, delta: float = DEFAULT_DELTA) -> None:
        self.name, self.num_classes, self.delta = name, num_classes, float(delta)
        self.vs_reference = ConfusionMatrix(num_classes)  # reference labels as "truth"
        self.gt_engine = ConfusionMatrix(num_classes)
        self.gt_reference = ConfusionMatrix(num_classes)
        self.agree = self.within = self.pixels = 0
        self.images: list[dict] = []
        self.max_logit = self.logit_sum = 0.0
        self.logit_count = 0
        self.has_logits = self.has_gt = False
        self.near_ties = self.agree_beyond_ties = 0
        self.label_path: dict[str, Any] | None = None

    def add(self, name: str, eng_out: np.ndarray, ref_logits: np.ndarray, output_kind: str,
            size: tuple[int, int], truth: np.ndarray | None, *, eng_logits: np.ndarray | None = None) -> np.ndarray:
        """Add one image (engine output C×h×w logits or h×w labels, reference C×h×w logits;
        ``truth`` at the image's own ``size``); returns the engine's labels at the engine's size.
        ``eng_logits``: a labels engine's internal logits, where it exposes them (the |Δlogit| then covers it too)."""
        from .data.transforms import to_labels

        ref_logits = np.asarray(ref_logits, dtype=np.float32)
        ref_labels = argmax_classes(ref_logits)
        eng_labels = argmax_classes(eng_out) if output_kind == "logits" else np.asarray(eng_out).astype(np.uint8)
        if eng_labels.shape != ref_labels.shape:
            raise IcnetDeployError(f"engine output {eng_labels.shape} and reference output {ref_labels.shape} "
                                   "differ in size")
        same = eng_labels == ref_labels
        agree, within = int(same.sum()), int(within_delta(ref_logits, eng_labels, self.delta).sum())
        near = near_ties(ref_logits)
        n_near, beyond = int(near.sum()), int(same[~near].sum())
        n = ref_labels.size
        row: dict[str, Any] = {
            "image": name, "size": list(size), "agreement_pct": 100.0 * agree / n,
            "agreement_within_delta_pct": 100.0 * within / n, "near_tie_pct": 100.0 * n_near / n,
            "agreement_beyond_ties_pct": 100.0 * beyond / (n - n_near) if n_near < n else 100.0,
        }
        self.agree, self.within, self.pixels = self.agree + agree, self.within + within, self.pixels + n
        self.near_ties, self.agree_beyond_ties = self.near_ties + n_near, self.agree_beyond_ties + beyond
        self.vs_reference.update(ref_labels, eng_labels)
        logits = eng_out if output_kind == "logits" else eng_logits
        if logits is not None:
            diff = np.abs(np.asarray(logits, dtype=np.float32) - ref_logits)
            row["max_abs_logit_error"] = float(diff.max())
            row["mean_abs_logit_error"] = float(diff.mean())
            self.max_logit = max(self.max_logit, float(diff.max()))
            self.logit_sum += float(diff.sum())
            self.logit_count += diff.size
            self.has_logits = True
        if truth is not None:
            self.has_gt = True
            self.gt_engine.update(truth, to_labels(eng_out, output_kind, size)[0])
            self.gt_reference.update(truth, to_labels(ref_logits, "logits", size)[0])
        self.images.append(row)
        return eng_labels

    def add_label_path(self, name: str, early: np.ndarray, full_labels: np.ndarray, output_kind: str, *,
                       threads: int | None = None, device_labels: np.ndarray | None = None) -> None:
        """Compare the labels of ``Runner.infer_for_labels`` (``early``, through the UpsampleArgmax op on
        the CPU) with the full output's (``add``'s return value), at the engine's size; ``device_labels``:
        those ``Runner.predict_labels`` made on the GPU instead (runners whose ``labels_on_device``)."""
        from .data.transforms import to_labels
        from .plugins import label_path

        if device_labels is not None:
            labels, how = device_labels, "UpsampleArgmax Triton kernel (GPU)"
        else:
            labels = to_labels(early, output_kind, full_labels.shape, threads=threads)[0]
            how = f"UpsampleArgmax {label_path()['implementation']} (CPU)"
        self.label_path = {"image": name, "output_shape": list(early.shape), "implementation": how,
                           "agreement_pct": 100.0 * float((labels == full_labels).mean())}

    def result(self) -> dict[str, Any]:
        vs = self.vs_reference.scores()

        def pct(k: int) -> float:
            return 100.0 * k / self.pixels if self.pixels else 100.0

        out: dict[str, Any] = {
            "set": self.name, "images": len(self.images), "pixels": self.pixels, "labelled": self.has_gt,
            "agreement_pct": pct(self.agree),
            "worst_image": min(self.images, key=lambda r: r["agreement_pct"]) if self.images else None,
            "delta_logit": self.delta,
            "agreement_within_delta_pct": pct(self.within),
            "worst_image_within_delta": (min(self.images, key=lambda r: r["agreement_within_delta_pct"])
                                         if self.images else None),
            "miou_vs_reference": vs.miou, "per_image": self.images,
            "near_tie_logit": NEAR_TIE_LOGIT, "near_tie_pct": pct(self.near_ties),
            "agreement_beyond_ties_pct": (100.0 * self.agree_beyond_ties / (self.pixels - self.near_ties)
                                          if self.pixels > self.near_ties else 100.0),
        }
        if self.label_path is not None:
            out["label_path"] = self.label_path
        per_class: dict[str, dict] = {n: {"iou_vs_reference": v} for n, v in vs.per_class.items()}
        if self.has_logits:
            out["max_abs_logit_error"] = self.max_logit
            out["mean_abs_logit_error"] = self.logit_sum / max(1, self.logit_count)
        if self.has_gt:
            eng, ref = self.gt_engine.scores(), self.gt_reference.scores()
            truth_pixels = self.gt_reference.matrix.sum(axis=1)
            enough = CLASS_IOU_MIN_SHARE * truth_pixels.sum()
            drops, rare = {}, []
            for k, n in enumerate(per_class):
                e, r = eng.per_class.get(n), ref.per_class.get(n)
                per_class[n].update(engine_iou=e, reference_iou=r, iou_delta=None if e is None or r is None else e - r,
                                    truth_pixels=int(truth_pixels[k]) if k < len(truth_pixels) else 0)
                if e is None or r is None:
                    continue
                if k < len(truth_pixels) and truth_pixels[k] >= enough:
                    drops[n] = r - e
                else:
                    rare.append(n)
            worst_class = max(drops, key=drops.get) if drops else None
            out["ground_truth"] = {
                "engine_miou": eng.miou, "reference_miou": ref.miou, "miou_drop": ref.miou - eng.miou,
                "engine_pixel_accuracy": eng.pixel_accuracy, "reference_pixel_accuracy": ref.pixel_accuracy,
                "max_class_iou_drop": drops[worst_class] if worst_class else 0.0, "worst_class": worst_class,
                "classes_too_rare_to_gate": rare,
            }
        out["per_class"] = per_class
        return out


def _entry(set_name: str, metric: str, value: float, threshold: float, passed: bool, message: str) -> dict:
    return {"set": set_name, "metric": metric, "value": value, "threshold": threshold, "passed": passed,
            "message": message}


def _at_least(name: str, metric: str, value: float, need: float, what: str, tail: str = "") -> dict:
    """A check that ``value`` (a percentage) is at least ``need``."""
    ok = value >= need
    return _entry(name, metric, value, need, ok, f"{name}: {what} {value:.4f}% {'≥' if ok else '<'} {need}%{tail}")


def _at_most(name: str, metric: str, value: float, limit: float, what: str, shown: str, tail: str = "") -> dict:
    """A check that ``value`` (shown as ``shown``) is at most ``limit``."""
    ok = value <= limit
    return _entry(name, metric, value, limit, ok, f"{name}: {what} {shown} {'≤' if ok else '>'} {limit}{tail}")


def gate(sets: list[dict], th: Thresholds) -> list[dict]:
    """Every check of ``th`` on every set record (``SetStats.result()``): a list of
    ``{"set", "metric", "value", "threshold", "passed", "message"}``."""
    out = []
    for s in sets:
        name, labelled = s["set"], bool(s.get("labelled"))
        worst = s["worst_image"]
        detail = f" (worst image {worst['image']}: {worst['agreement_pct']:.4f}%)" if worst else ""
        kind = "" if th.min_agreement_unlabelled is None else (" (labelled set)" if labelled else " (unlabelled set)")
        out.append(_at_least(name, "pixel_agreement", s["agreement_pct"], th.agreement_for(labelled), "pixel agreement",
                             kind + detail))
        within = f"within δ={th.delta:g} logit"
        if th.min_within_delta is not None:
            out.append(_at_least(name, "agreement_within_delta", s["agreement_within_delta_pct"], th.min_within_delta,
                                 f"agreement {within}"))
        if th.min_within_delta_worst is not None and s.get("worst_image_within_delta"):
            wi = s["worst_image_within_delta"]
            out.append(_at_least(name, "worst_image_within_delta", wi["agreement_within_delta_pct"],
                                 th.min_within_delta_worst, f"worst image {within}", f" ({wi['image']})"))
        gt = s.get("ground_truth")
        if th.max_miou_drop is not None and gt:
            d = gt["miou_drop"]
            out.append(_at_most(name, "miou_drop", d, th.max_miou_drop, "mIoU drop", f"{d:.3f} points",
                                f" (reference {gt['reference_miou']:.2f}%, engine {gt['engine_miou']:.2f}%)"))
        if th.max_class_iou_drop is not None and gt:
            d = gt["max_class_iou_drop"]
            out.append(_at_most(name, "class_iou_drop", d, th.max_class_iou_drop, "largest class IoU drop",
                                f"{d:.3f} points", f" ({gt['worst_class'] or 'no class'})"))
        if "label_path" in s:
            lp = s["label_path"]
            how = f", {lp['implementation']}" if lp.get("implementation") else ""
            out.append(_at_least(name, "label_path_agreement", lp["agreement_pct"], LABEL_PATH_MIN_AGREEMENT,
                                 f"labels of infer's path (output {'×'.join(map(str, lp['output_shape']))}{how}) "
                                 "agree with the full output's", f" ({lp['image']})"))
        if th.max_logit_error is not None and "max_abs_logit_error" in s:
            e = s["max_abs_logit_error"]
            out.append(_at_most(name, "max_logit_error", e, th.max_logit_error, "max |Δlogit|", f"{e:.3g}"))
    return out


def gate_passed(checks: list[dict]) -> bool:
    return all(c["passed"] for c in checks)
