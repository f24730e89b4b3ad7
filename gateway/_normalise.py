"""Normalisation of raw device levels into "fraction remaining"; pure functions."""

from __future__ import annotations

from datetime import datetime

from ._messages import SlotSpec

__all__ = ["REFILL_JUMP", "is_refill", "normalise_level"]

# A rise of at least a fifth of capacity is a refill: quantisation flicker (10 % steps)
# and sensor noise (a few %) stay below it.
REFILL_JUMP = 0.2


def normalise_level(value: float | str | None, slot: SlotSpec) -> float | None:
    """Fraction of capacity remaining (headroom for receptacles that fill up); None when unknown."""
    if value is None or isinstance(value, str):
        return None  # sentinels ("unknown", "some") carry no number to forecast from
    fraction = value / 100.0 if slot.unit == "percent" else value / slot.capacity
    fraction = min(max(fraction, 0.0), 1.0)
    return 1.0 - fraction if slot.fills_up else fraction


def is_refill(previous: float | None, previous_at: datetime | None, level: float, at: datetime) -> bool:
    """A level that rose by REFILL_JUMP since the previous, earlier reading is a refill."""
    if previous is None or previous_at is None or at <= previous_at:
        return False
    return level - previous >= REFILL_JUMP
