"""A stored forecast as the rest of the product reads it: a frozen, typed view, never the explanation's keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .methods import MEASURED_METHODS, ForecastMethod

__all__ = ["ForecastView"]


@dataclass(frozen=True, slots=True)
class ForecastView:
    """The latest forecast of one slot."""

    device_id: str
    slot_id: str
    computed_at: datetime
    method: ForecastMethod
    level_now: float | None  # fraction of capacity left now (headroom for receptacles)
    rate_per_day: float | None  # fraction of capacity used per active day
    empty_p10: datetime | None  # 10 % chance it is empty sooner than this (None: not in sight)
    empty_p50: datetime | None
    empty_p90: datetime | None
    confidence: float  # 0..1
    readings_used: int
    step: float  # the slot's quantisation step as a fraction of capacity (0: unquantised)
    prior_weight: float | None  # the fleet prior's share of the rate's precision
    segment_start: datetime | None  # the refill after which the readings it rests on were taken
    explanation: Mapping[str, Any]  # the core's explanation as stored, JSON: what an order's "why now" shows

    @property
    def measured(self) -> bool:
        """Whether the rate rests on a level that moved (not only on a bound or the fleet's prior)."""
        return self.method in MEASURED_METHODS

    def describes(self, segment_start: datetime | None) -> bool:
        """Whether it was made from the segment that starts at `segment_start` (no refill seen since)."""
        return self.segment_start == segment_start
