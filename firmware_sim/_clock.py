"""The simulator's own clock (it imports nothing of the product's): real or accelerated time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["SimClock"]


class SimClock:
    """Simulated time running `speed` times faster than real time from `start`."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        self.speed = speed
        self._start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def real_seconds(self, sim_seconds: float) -> float:
        """How long a span of simulated time lasts in real time."""
        return sim_seconds / self.speed
