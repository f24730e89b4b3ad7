"""A slot's state folded from its readings: the latest level and the start of its segment; pure."""

from __future__ import annotations

from datetime import datetime

from .normalise import is_refill

__all__ = ["SlotState"]


class SlotState:
    """One slot while readings are folded into it: the last level and its segment start (the last refill)."""

    __slots__ = ("device_id", "level", "level_at", "segment_start", "slot_id")

    def __init__(self, device_id: str, slot_id: str, level: float | None, level_at: datetime | None, segment_start: datetime | None) -> None:
        self.device_id, self.slot_id = device_id, slot_id
        self.level, self.level_at, self.segment_start = level, level_at, segment_start

    def observe(self, level: float, ts: datetime, replaced: bool) -> None:
        """A new reading: a refill starts a segment; the latest reading (by time) is the level."""
        if (replaced or is_refill(self.level, self.level_at, level, ts)) and (self.segment_start is None or ts > self.segment_start):
            self.segment_start = ts
        if self.level_at is None or ts >= self.level_at:
            self.level, self.level_at = level, ts

    def fold(self, readings: list[tuple[datetime, float, bool]]) -> None:
        """Observe readings (time, level, replaced) in time order, whatever order they came in."""
        for ts, level, replaced in sorted(readings, key=lambda r: r[0]):
            self.observe(level, ts, replaced)
