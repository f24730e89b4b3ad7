"""How many messages a device may send (docs/protocol.md, "Limits"): a token bucket per device; pure, time passed in.

A device that reports hourly sends 24 messages a day; after a week offline it sends its buffer in
a burst (168 hourly readings, 2,016 at five-minute intervals). So a device may send `burst`
messages at once and `per_minute` more each minute after that; what it sends beyond is counted
and dropped, so that one device's flood costs the others at most a small share of ingest.
"""

from __future__ import annotations

__all__ = ["DEFAULT_BURST", "DEFAULT_PER_MINUTE", "DeviceBudget"]

DEFAULT_BURST = 2500  # a week of five-minute readings, with room to spare
DEFAULT_PER_MINUTE = 60.0  # one a second, sixty times what an hourly device needs
_MAX_DEVICES = 200_000  # buckets kept; past that they start afresh (full), which errs towards letting through


class DeviceBudget:
    """Per-device token buckets: `allow(device, now)` spends one token if there is one."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, burst: int = DEFAULT_BURST, per_minute: float = DEFAULT_PER_MINUTE) -> None:
        if burst < 1 or per_minute <= 0:
            raise ValueError(f"a device budget needs burst >= 1 and per_minute > 0, got {burst} and {per_minute}")
        self.burst = float(burst)
        self.rate = per_minute / 60.0  # tokens a second
        self._buckets: dict[str, list[float]] = {}  # device -> [tokens, at]

    def allow(self, device_id: str, now: float) -> bool:
        """Whether the device may send one more message at `now` (seconds, monotonic); spends it if so."""
        bucket = self._buckets.get(device_id)
        if bucket is None:
            if len(self._buckets) >= _MAX_DEVICES:
                self._buckets.clear()
            bucket = self._buckets[device_id] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True
