"""How a forecast was reached: the core's methods, by name, and which of them measured use."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MEASURED_METHODS", "ForecastMethod"]


class ForecastMethod(StrEnum):
    """The core's methods, in the order of their int8 codes in `ForecastArrays.method`."""

    NONE = "none"  # no readings and no prior: nothing to say
    PRIOR = "prior only"  # the fleet's prior for the device model and slot, no own evidence
    LEVEL = "level regression"  # a line through the levels
    STEPDOWN = "step-down regression"  # a line through the step-downs of a quantised level
    BOUND = "step bound"  # a quantised level that has not moved: its use is bounded, not measured


CODES: tuple[ForecastMethod, ...] = tuple(ForecastMethod)  # int8 code -> method
# Methods whose rate rests on a level that moved; the others bound it or borrow the fleet's prior.
MEASURED_METHODS: frozenset[ForecastMethod] = frozenset((ForecastMethod.LEVEL, ForecastMethod.STEPDOWN))
