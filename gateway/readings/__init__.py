"""Readings: raw levels normalised to fractions, device clocks corrected, slot state folded; pure."""

from .clock_skew import (
    CONFIRMATIONS,
    MAX_AHEAD,
    MAX_BUFFER_S,
    SKEW_TOLERANCE_S,
    WINDOW,
    DeviceClock,
    corrected_time,
    estimate_clock_offset,
    relaxed_clock_offset,
)
from .normalise import ASSUMED_STEP, REFILL_RISE, is_refill, normalise_level, refill_jump
from .slot_state import SlotState

__all__ = [
    "ASSUMED_STEP",
    "CONFIRMATIONS",
    "MAX_AHEAD",
    "MAX_BUFFER_S",
    "REFILL_RISE",
    "SKEW_TOLERANCE_S",
    "WINDOW",
    "DeviceClock",
    "SlotState",
    "corrected_time",
    "estimate_clock_offset",
    "is_refill",
    "normalise_level",
    "refill_jump",
    "relaxed_clock_offset",
]
