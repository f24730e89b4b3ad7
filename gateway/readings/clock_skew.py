"""Device clocks: learning each device's skew from its messages' delays, and correcting its timestamps; pure."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

__all__ = [
    "CONFIRMATIONS",
    "MAX_AHEAD",
    "MAX_BUFFER_S",
    "SKEW_TOLERANCE_S",
    "WINDOW",
    "DeviceClock",
    "corrected_time",
    "estimate_clock_offset",
    "relaxed_clock_offset",
]

# Clock skew. A device's clock may be off by minutes to hours, or reset to a default date after a
# reboot. `received - device_ts` is the network or buffering delay minus the device's skew; its
# minimum over recent messages estimates the skew, because live messages have near-zero delay
# while buffered ones only ever look later. The minimum relaxes upwards slowly, so a clock that
# drifts back is followed; a message older than any device buffers (MAX_BUFFER_S, protocol.md)
# cannot be a late one, so its clock was reset (1970 after a reboot) and the estimate restarts.
# A plain minimum would follow a single message dated days ahead (a glitch, or an attacker) and
# then date every later, correct reading days in the past for months: so a move to an earlier
# device clock needs CONFIRMATIONS recent messages that agree, among the last WINDOW a worker saw
# of the device (the minimum's estimate is their CONFIRMATIONS-th smallest, never below the
# relaxed previous estimate's company). One outlier never moves it.
SKEW_TOLERANCE_S = 120.0  # below this the device's own time is kept: forecasts work in days
MAX_BUFFER_S = 7 * 86400.0  # devices keep at most a week of unsent telemetry (docs/protocol.md)
# A device clock further ahead than this is broken, not skewed: its messages are rejected
# (bad_timestamp) rather than teaching the gateway an offset that would date every later reading.
MAX_AHEAD = timedelta(days=7)
_SKEW_RELAX = 0.01  # seconds of upward relaxation per second elapsed (36 s an hour)
WINDOW = 16  # recent observed delays a worker keeps per device (in memory; the estimate itself is stored)
CONFIRMATIONS = 2  # messages that must agree before the estimate moves to an earlier device clock


def relaxed_clock_offset(previous: float, previous_at: datetime, at: datetime) -> float:
    """What an estimate becomes by `at` when no message binds it."""
    return previous + _SKEW_RELAX * max((at - previous_at).total_seconds(), 0.0)


def estimate_clock_offset(
    previous: float | None, previous_at: datetime | None, recent: Sequence[float], at: datetime, trusted: bool = True
) -> float:
    """New estimate of (gateway time - device time) in seconds, from the recent observed delays (the latest last).

    The minimum of the relaxed previous estimate and the delays, where a delay counts only with
    CONFIRMATIONS - 1 others at or below it: a lower value is believed only when that many agree.
    `trusted`: the previous estimate rests on agreeing messages (or was stored); an untrusted one
    (a device's very first message, or the first after a reset) gives way to the delays at once.
    """
    observed = recent[-1]
    if previous is None or previous_at is None or observed > MAX_BUFFER_S:
        return observed  # all we know, or a clock reset to 1970: the estimate restarts
    agreed = sorted(recent)[CONFIRMATIONS - 1] if len(recent) >= CONFIRMATIONS else None
    if not trusted:
        return observed if agreed is None else agreed
    base = relaxed_clock_offset(previous, previous_at, at)
    if agreed is None:  # one message alone may raise the estimate, never lower it
        return base if observed < base - SKEW_TOLERANCE_S else min(base, observed)
    return min(base, agreed)


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

    __slots__ = ("clock_offset_at", "clock_offset_s", "last_seen_at", "recent", "stored", "trusted")

    def __init__(self, last_seen_at: datetime | None, offset: float | None, offset_at: datetime | None) -> None:
        self.last_seen_at, self.clock_offset_s, self.clock_offset_at = last_seen_at, offset, offset_at
        self.stored: tuple[datetime | None, float | None, datetime | None] = (last_seen_at, offset, offset_at)
        self.recent: deque[float] = deque(maxlen=WINDOW)  # observed delays, the latest last
        self.trusted = offset is not None  # a stored estimate rests on what an earlier worker saw

    def observe(self, device_ts: datetime, received_at: datetime) -> datetime:
        """Learn from one message; returns its time on the gateway's clock."""
        observed = (received_at - device_ts).total_seconds()
        if observed > MAX_BUFFER_S and (not self.recent or self.recent[-1] <= MAX_BUFFER_S):
            self.recent.clear()  # a reset clock: what came before says nothing of it
            self.trusted = False
        self.recent.append(observed)
        estimate = estimate_clock_offset(self.clock_offset_s, self.clock_offset_at, self.recent, received_at, self.trusted)
        self.trusted = self.trusted or len(self.recent) >= CONFIRMATIONS
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
