"""Regression pins for the shipped checkpoint: the exact numbers the model card (models/README.md)
reports, so that a change which moves them is noticed.

What is pinned: the mIoU of ``models/icnet_r50_half_synthetic.safetensors`` on two 12-scene
generated sets at 1024×2048, as ``synth --count 12 --seed S --split val`` then ``evaluate --json``
give it (the model card's "Status" numbers: seed 900000 is its held-out set, seed 1395963513 the
lowest of its 40 sets at random seeds).

Why pinned: the pass/fail promise is the ≥ 75% target (``test_e2e.py``); these exact values move
when the weights, the scene generator, the pre/post-processing or the evaluation protocol change,
even when the target still holds. If such a change is intended, re-measure, update the model card
and these values together. Tolerance: CPU kernels differ in the last bits, not in the second
decimal of the mIoU. Rewriting the checkpoint's metadata does not move them (the tensors decide).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

CARD_MIOU = {900_000: 84.32, 1_395_963_513: 80.63}  # percent, models/README.md
TOLERANCE = 0.05  # mIoU points


@pytest.mark.parametrize("seed", sorted(CARD_MIOU))
def test_shipped_checkpoint_miou_is_the_model_cards(shipped_set_scores, seed):
    assert shipped_set_scores(seed)["miou"] == pytest.approx(CARD_MIOU[seed], abs=TOLERANCE)
