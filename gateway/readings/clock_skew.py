"""Device clocks: learning each device's skew from its messages' delays, and correcting its timestamps; pure."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["MAX_AHEAD", "MAX_BUFFER_S", "SKEW_TOLERANCE_S", "DeviceClock", "corrected_time", "estimate_clock_offset", "relaxed_clock_offset"]

# Clock skew. A device's clock may be off by minutes to hours, or reset to a default date after a
# reboot. `received - device_ts` is the network or buffering delay minus the device's skew; its
# minimum over recent messages estimates the skew, because live messages have near-zero delay
# while buffered ones only ever look later. The minimum relaxes upwards slowly, so a clock that
# drifts back is followed; a message older than any device buffers (MAX_BUFFER_S, protocol.md)
# cannot be a late one, so its clock was reset (1970 after a reboot) and the estimate restarts.
SKEW_TOLERANCE_S = 120.0  # below this the device's own time is kept: forecasts work in days
MAX_BUFFER_S = 7 * 86400.0  # devices keep at most a week of unsent telemetry (docs/protocol.md)
# A device clock further ahead than this is broken, not skewed: its messages are rejected
# (bad_timestamp) rather than teaching the gateway an offset that would date every later reading.
MAX_AHEAD = timedelta(days=7)
_SKEW_RELAX = 0.01  # seconds of upward relaxation per second elapsed (36 s an hour)


def relaxed_clock_offset(previous: float, previous_at: datetime, at: datetime) -> float:
    """What an estimate becomes by `at` when no message binds it."""
    return previous + _SKEW_RELAX * max((at - previous_at).total_seconds(), 0.0)


def estimate_clock_offset(previous: float | None, previous_at: datetime | None, observed: float, at: datetime) -> float:
    """New estimate of (gateway time - device time) in seconds, from one message's observed delay."""
    if previous is None or previous_at is None or observed > MAX_BUFFER_S:
        return observed
    return min(observed, relaxed_clock_offset(previous, previous_at, at))


def corrected_time(device_ts: datetime, offset: float | None, received_at: datetime) -> datetime:
    """The device's timestamp on the gateway's clock, never after its arrival.

    A clock ahead of ours is unambiguous (nothing arrives before it is sent), and so is one further
    behind than any buffer. A clock a little behind looks exactly like buffering, so its time is
    kept: a constant lag shifts a whole series, which leaves usage rates untouched.
    """
    if offset is not None and (offset < -SKEW_TOLERANCE_S or offset > MAX_BUFFER_S):
        try:
            device_ts += timedelta(seconds=offset)
        except OverflowError:  # an offset learnt from a nonsense clock: keep the device's time
            pass
    return min(device_ts, received_at)


# A device's stored clock is rewritten when it is seen after this long, or when its estimate moves
# by more than a second; in between, the stored (offset, time) relaxes to the same estimate.
_SEEN_EVERY_S = 60.0
_OFFSET_SLACK_S = 1.0


class DeviceClock:
    """What a worker knows of one device's clock: its learnt offset, and what the database holds."""

    __slots__ = ("clock_offset_at", "clock_offset_s", "last_seen_at", "stored")

    def __init__(self, last_seen_at: datetime | None, offset: float | None, offset_at: datetime | None) -> None:
        self.last_seen_at, self.clock_offset_s, self.clock_offset_at = last_seen_at, offset, offset_at
        self.stored: tuple[datetime | None, float | None, datetime | None] = (last_seen_at, offset, offset_at)

    def observe(self, device_ts: datetime, received_at: datetime) -> datetime:
        """Learn from one message; returns its time on the gateway's clock."""
        observed = (received_at - device_ts).total_seconds()
        estimate = estimate_clock_offset(self.clock_offset_s, self.clock_offset_at, observed, received_at)
        self.clock_offset_s, self.clock_offset_at = estimate, received_at
        if self.last_seen_at is None or received_at > self.last_seen_at:
            self.last_seen_at = received_at
        return corrected_time(device_ts, estimate, received_at)

    def changed(self) -> bool:
        """Whether the database's row is due a rewrite: seen after a minute, or its clock estimate moved."""
        seen, offset, offset_at = self.stored
        if self.last_seen_at is not None and (seen is None or (self.last_seen_at - seen).total_seconds() >= _SEEN_EVERY_S):
            return True
        if self.clock_offset_s is None or self.clock_offset_at is None:
            return False
        # Unbound by newer messages, the stored pair relaxes to the same estimate later on.
        return offset is None or offset_at is None or abs(self.clock_offset_s - relaxed_clock_offset(offset, offset_at, self.clock_offset_at)) > _OFFSET_SLACK_S

    def mark_stored(self) -> None:
        """The current estimate is (or will be) what the database holds."""
        self.stored = (self.last_seen_at, self.clock_offset_s, self.clock_offset_at)
