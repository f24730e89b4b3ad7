"""Normalisation of raw device levels into "fraction remaining", and the one rule that tells a refill; pure."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import numpy as np

from ..protocol import SlotSpec

Step = TypeVar("Step", float, np.ndarray)  # one slot's step, or an array of them (the forecasting core)

__all__ = ["ASSUMED_STEP", "REFILL_RISE", "is_refill", "normalise_level", "refill_jump"]

# A refill is a rise of more than REFILL_RISE beyond one quantisation step: about 7 sd of the
# difference of two readings with 1 % noise, flicker between two steps stays below it, and any real
# top-up is above it. The forecasting core applies it with the step it detects per slot; settle
# (which folds readings before any step is known) with the 10 % steps most devices report.
REFILL_RISE = 0.10
ASSUMED_STEP = 0.10


def refill_jump(step: Step) -> Step:
    """The rise (fraction of capacity) beyond which a level that went up was refilled."""
    return REFILL_RISE + step


def normalise_level(value: float | str | None, slot: SlotSpec) -> float | None:
    """Fraction of capacity remaining (headroom for receptacles that fill up); None when unknown."""
    if value is None or isinstance(value, str):
        return None  # sentinels ("unknown", "some") carry no number to forecast from
    fraction = value / 100.0 if slot.unit == "percent" else value / slot.capacity
    fraction = min(max(fraction, 0.0), 1.0)
    return 1.0 - fraction if slot.fills_up else fraction


def is_refill(previous: float | None, previous_at: datetime | None, level: float, at: datetime, step: float = ASSUMED_STEP) -> bool:
    """A level that rose by more than `refill_jump(step)` since the previous, earlier reading is a refill."""
    if previous is None or previous_at is None or at <= previous_at:
        return False
    return level - previous > refill_jump(step)
