"""How often the rare street objects appear in generated scenes (a training-data knob)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import DataError


@dataclass(frozen=True)
class SceneMix:
    """How often the rare street objects appear: a knob for *training* data only.

    The defaults are the generator every validation, held-out and calibration set was made with;
    with them a seed gives the same scene as before this class existed (the same random draws).
    Raising them shows the network more of what it confuses (trucks and buses, which it reads as
    train; trams; small two-wheelers) without touching the sets it is judged on.
    """

    train: float = 0.1  # probability that a scene has a tram track (and, mostly, a tram)
    heavy: float = 1.0  # multiplier on the per-lane truck and bus rates (drawn up to 0.15 / 0.12)
    two_wheelers: float = 1.0  # multiplier on motorcycles in traffic and parked, and on cyclist groups
    trucks: float = 1.0  # a further multiplier on the truck rate alone (trucks are what it now reads as train)

    def __post_init__(self) -> None:
        for name, value, hi in (("train", self.train, 1.0), ("heavy", self.heavy, 2.5),
                                ("two_wheelers", self.two_wheelers, 3.0), ("trucks", self.trucks, 3.0)):
            if not 0.0 <= value <= hi:
                raise ValueError(f"scene mix {name}={value} is out of range 0..{hi}")

    @property
    def is_default(self) -> bool:
        """Whether this is the generator of the held-out sets (the only mix allowed for them)."""
        return self == SceneMix()

    def require_split(self, split: str) -> None:
        """Refuse a non-default mix for any split but ``train``: held-out sets must not change."""
        if not self.is_default and split != "train":
            raise DataError(f"a scene mix other than the default (--train-prob/--heavy/--two-wheelers/--trucks) is "
                            f"for training data only (--split train), not split '{split}': held-out sets must stay "
                            "the scenes every score was measured on")
