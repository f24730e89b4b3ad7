"""Normalisation of raw device levels into "fraction remaining"; pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta

from ._messages import SlotSpec

__all__ = ["MAX_AHEAD", "REFILL_JUMP", "SKEW_TOLERANCE_S", "corrected_time", "estimate_clock_offset", "is_refill", "normalise_level", "relaxed_clock_offset"]

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
