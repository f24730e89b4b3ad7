"""How many messages a device may send (docs/protocol.md, "Limits"): a token bucket per device; pure, time passed in.

A device that reports hourly sends 24 messages a day; after a week offline it sends its buffer in
a burst (168 hourly readings, 2,016 at five-minute intervals). So a device may send `burst`
messages at once and `per_minute` more each minute after that; what it sends beyond is counted
and dropped, so that one device's flood costs the others at most a small share of ingest.

Each worker also notes a device over its budget durably, once a minute at most (a dead letter,
reason `over_budget`, saying how many it dropped since when), and a device whose notes span ten
minutes of the last hour is over budget persistently: its household is told (SPEC 3, issue 10).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_PER_MINUTE",
    "DEVICE_CLASSES",
    "NOTE_EVERY",
    "PERSISTENT_SPAN",
    "PERSISTENT_WINDOW",
    "DeviceBudget",
    "OverBudget",
    "OverBudgetNote",
    "device_class",
    "note_detail",
    "persistently_over_budget",
    "read_note",
]

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


# The device classes of SPEC 1, as the first part of a birth's `kind` ("printer.laser" is a printer).
# A metric labelled with a device's own text could be given a new label value per message by one
# device; these are all the values a label takes, with "other" and "unknown" (no birth seen).
DEVICE_CLASSES = frozenset({"printer", "fridge", "coffee", "water_filter", "dishwasher", "pet_feeder"})


def device_class(kind: str | None) -> str:
    """The class of a device of this `kind` (a birth's), for labelling a metric: one of DEVICE_CLASSES, "other" or "unknown"."""
    if kind is None:
        return "unknown"
    head = kind.partition(".")[0].lower()
    return head if head in DEVICE_CLASSES else "other"


NOTE_EVERY = timedelta(minutes=1)  # a worker notes a device over budget at most this often (and logs it)
PERSISTENT_WINDOW = timedelta(hours=1)  # the notes that count: those of the last hour
# Notes spanning this long within the window: a device still flooding after ten minutes is no burst
# after an outage (a week of readings fits its budget) but firmware or settings that misbehave.
PERSISTENT_SPAN = timedelta(minutes=10)
_NOTE = re.compile(r"(\d+) messages? dropped since (\S+): ")


@dataclass(frozen=True, slots=True)
class OverBudgetNote:
    """One worker's note of a device over budget: written `at`, counting `dropped` messages since the first of them, `since`."""

    at: datetime
    dropped: int
    since: datetime


@dataclass(frozen=True, slots=True)
class OverBudget:
    """A device over its message budget persistently: how many of its messages were dropped since when, as its notes say."""

    device_id: str
    dropped: int
    since: datetime
    last: datetime  # the latest note


def note_detail(dropped: int, since: datetime, burst: float, per_minute: float) -> str:
    """The detail of an `over_budget` dead letter (`read_note` reads it back)."""
    noun = "message" if dropped == 1 else "messages"
    return f"{dropped} {noun} dropped since {since.isoformat()}: the device sends more than its budget ({burst:g} at once, then {per_minute:g} a minute)"


def read_note(at: datetime, detail: str) -> OverBudgetNote | None:
    """The note an `over_budget` dead letter written `at` holds, or None when its detail is not one (`note_detail`)."""
    m = _NOTE.match(detail)
    if m is None:
        return None
    try:
        since = datetime.fromisoformat(m.group(2))
    except ValueError:
        return None
    return OverBudgetNote(at, int(m.group(1)), since if since.tzinfo is not None else since.replace(tzinfo=at.tzinfo))


def persistently_over_budget(device_id: str, notes: Iterable[OverBudgetNote], now: datetime) -> OverBudget | None:
    """Whether a device's notes (of every worker) show it over budget persistently at `now`: notes of the last hour spanning ten minutes.

    What it reports counts those notes only: the messages dropped since the first of them began.
    """
    recent = sorted((n for n in notes if now - PERSISTENT_WINDOW <= n.at <= now), key=lambda n: n.at)
    if not recent or recent[-1].at - recent[0].at < PERSISTENT_SPAN:
        return None
    return OverBudget(device_id, sum(n.dropped for n in recent), min(n.since for n in recent), recent[-1].at)
