"""The parity core on hand-made logits: agreement within δ, and the INT8 gate's checks one by one."""

from __future__ import annotations

import numpy as np
import pytest

from icnet_deploy.compare import SetStats, default_thresholds, gate, gate_passed
from icnet_deploy.metrics import within_delta


def _ref() -> np.ndarray:
    """3 classes × 1 × 4 pixels: class 0 best everywhere; class 1 is 0.1 below it at pixel 0,
    0.3 below at pixel 1 and 2 below elsewhere; class 2 is 5 below everywhere."""
    ref = np.zeros((3, 1, 4), np.float32)
    ref[0] = 5.0
    ref[1] = [4.9, 4.7, 3.0, 3.0]
    return ref


def test_within_delta_accepts_the_reference_label_and_near_ties_only():
    ref = _ref()
    labels = np.array([[1, 1, 1, 0]])
    assert within_delta(ref, labels, 0.25).tolist() == [[True, False, False, True]]
    assert within_delta(ref, labels, 0.5).tolist() == [[True, True, False, True]]
    assert within_delta(ref, labels, 0.0).tolist() == [[False, False, False, True]]  # δ = 0: raw agreement
    assert within_delta(ref, np.array([[2, 2, 2, 2]]), 4.9).tolist() == [[False] * 4]
    assert within_delta(ref, np.array([[7, 0, 0, 0]]), 100.0).tolist() == [[False, True, True, True]]  # no such class
    with pytest.raises(ValueError, match="differ in size"):
        within_delta(ref, np.zeros((2, 2), np.uint8))


def test_set_stats_report_within_delta_per_image_and_pooled_labels_engine_too():
    ref = _ref()
    stats = SetStats("photos", 3, delta=0.25)
    flipped = ref.copy()
    flipped[1, 0, 0] = 5.1  # flips the near tie (within δ)
    stats.add("a", flipped, ref, "logits", (1, 4), None)
    stats.add("b", np.array([[1, 1, 0, 0]], np.uint8), ref, "labels", (1, 4), None)  # a labels engine
    out = stats.result()
    a, b = out["per_image"]
    assert (a["agreement_pct"], a["agreement_within_delta_pct"]) == (75.0, 100.0)
    assert (b["agreement_pct"], b["agreement_within_delta_pct"]) == (50.0, 75.0)
    assert out["agreement_within_delta_pct"] == pytest.approx(87.5) and out["agreement_pct"] == pytest.approx(62.5)
    assert out["worst_image_within_delta"]["image"] == "b" and out["delta_logit"] == 0.25
    assert not out["labelled"] and "ground_truth" not in out


def _set(name: str, *, raw: float, within: float, worst_within: float, labelled: bool,
         miou_drop: float = 0.0, class_drop: float = 0.0) -> dict:
    s = {"set": name, "labelled": labelled, "agreement_pct": raw, "agreement_within_delta_pct": within,
         "worst_image": {"image": "w", "agreement_pct": raw},
         "worst_image_within_delta": {"image": "w", "agreement_within_delta_pct": worst_within}}
    if labelled:
        s["ground_truth"] = {"miou_drop": miou_drop, "reference_miou": 80.0, "engine_miou": 80.0 - miou_drop,
                             "max_class_iou_drop": class_drop, "worst_class": "pole"}
    return s


def _failed(sets: list[dict]) -> set[tuple[str, str]]:
    return {(c["set"], c["metric"]) for c in gate(sets, default_thresholds("int8")) if not c["passed"]}


def test_int8_gate_passes_coin_tosses_on_photos_but_not_mass_flips():
    # photos at 98.2% raw (near-tie flips) but 99.93% within δ: passes, as the fixed-rule engine measures
    good = [_set("generated", raw=99.85, within=99.99, worst_within=99.98, labelled=True, miou_drop=0.01, class_drop=0.3),
            _set("photos", raw=98.2, within=99.93, worst_within=99.72, labelled=False)]
    checks = gate(good, default_thresholds("int8"))
    assert gate_passed(checks), [c["message"] for c in checks if not c["passed"]]
    assert {c["metric"] for c in checks} == {"pixel_agreement", "agreement_within_delta", "worst_image_within_delta",
                                             "miou_drop", "class_iou_drop"}
    # each bar on its own
    assert _failed([_set("photos", raw=96.9, within=99.9, worst_within=99.9, labelled=False)]) == {("photos", "pixel_agreement")}
    assert _failed([_set("photos", raw=98.0, within=99.4, worst_within=99.9, labelled=False)]) == {
        ("photos", "agreement_within_delta")}
    assert _failed([_set("photos", raw=98.0, within=99.6, worst_within=98.9, labelled=False)]) == {
        ("photos", "worst_image_within_delta")}
    assert _failed([_set("generated", raw=99.4, within=99.9, worst_within=99.9, labelled=True)]) == {
        ("generated", "pixel_agreement")}
    assert _failed([_set("generated", raw=99.9, within=99.9, worst_within=99.9, labelled=True, miou_drop=0.6)]) == {
        ("generated", "miou_drop")}
    assert _failed([_set("generated", raw=99.9, within=99.9, worst_within=99.9, labelled=True, class_drop=2.5)]) == {
        ("generated", "class_iou_drop")}


def test_fp32_and_fp16_gates_stay_raw():
    s = [_set("photos", raw=99.95, within=100.0, worst_within=100.0, labelled=False)]
    assert not gate_passed(gate(s, default_thresholds("fp32")))
    assert gate_passed(gate(s, default_thresholds("fp16")))
    assert {c["metric"] for c in gate(s, default_thresholds("fp16"))} == {"pixel_agreement"}


def test_class_iou_drop_is_gated_on_classes_with_enough_pixels_only():
    """A class with a handful of pixels loses IoU points when one flips: reported, not gated."""
    from icnet_deploy.compare import CLASS_IOU_MIN_SHARE

    h, w = 100, 100
    truth = np.zeros((h, w), np.uint8)
    truth[:, 50:] = 1
    truth[0, :5] = 2  # 5 pixels of class 2: 0.05% of the set, under the share
    ref = np.zeros((3, h, w), np.float32)
    ref[truth.astype(np.intp), np.arange(h)[:, None], np.arange(w)[None, :]] = 5.0  # eager is right everywhere
    eng = ref.copy()
    eng[2, 0, 0], eng[0, 0, 0] = 0.0, 5.0  # the engine loses one of the rare class's 5 pixels (IoU −20)
    stats = SetStats("generated", 3)
    stats.add("a", eng, ref, "logits", (h, w), truth)
    gt = stats.result()["ground_truth"]
    assert 5 < h * w * CLASS_IOU_MIN_SHARE and gt["classes_too_rare_to_gate"] == ["2"]
    assert gt["max_class_iou_drop"] < 0.1 and stats.result()["per_class"]["2"]["iou_delta"] == pytest.approx(-20.0)
    checks = {c["metric"]: c for c in gate([stats.result()], default_thresholds("int8"))}
    assert checks["class_iou_drop"]["passed"]
