"""Values the pure device model hands out: quirk settings, messages, and the ground truth behind them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Message", "Quirks", "Refill", "Truth", "rfc3339", "to_datetime"]


def to_datetime(t: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


def rfc3339(t: float) -> str:
    """Epoch seconds as RFC 3339 in UTC, to the second (what a device clock prints)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass(frozen=True, slots=True)
class Quirks:
    """How messy a device is. Rates are per simulated day unless said otherwise; all are seeded.

    The defaults are assumptions (USAGE_FIGURES has no figures on connectivity), except `p_away`
    (§9) and `buffer_days` (docs/protocol.md: devices keep at most 7 days of unsent telemetry).
    """

    quantise: bool = True  # per-kind steps, noise and sentinels; False: exact levels (1 % or 1 unit)
    p_unknown: float = 0.002  # per reading: null or "unknown" instead of a level
    p_offline: float = 0.02  # per day: an offline spell starts (Wi-Fi trouble, router restart)
    offline_hours: tuple[float, float] = (3.0, 1.5)  # lognormal median hours and sigma of a spell
    p_reboot: float = 0.01  # per day: a reboot (power cut, update) that resets `seq` to 0
    p_skew: float = 0.2  # per device: its clock is set wrong by seconds to `max_skew_h` hours
    max_skew_h: float = 6.0
    drift_ppm: float = 20.0  # sigma of every clock's drift (quartz without NTP)
    p_clock_reset: float = 0.05  # per reboot: the clock restarts at 1970 until it syncs (1-6 h)
    p_away: float = 0.78  # per year: the household's main holiday (§9); 0 disables time away
    p_elsewhere: float = 0.1  # per unit falling below 20 %: the household buys one elsewhere anyway
    buffer_days: float = 7.0  # unsent telemetry kept while offline; older readings are dropped

    @classmethod
    def none(cls) -> Quirks:
        """A clean device: exact levels, always online, true clock, never away."""
        return cls(False, 0.0, 0.0, (1.0, 0.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message a device would publish at simulated time `at` (epoch seconds, UTC)."""

    suffix: str  # topic suffix: birth, telemetry or status
    payload: dict[str, Any]
    at: float
    retain: bool = False
    will: bool = False  # the broker's last will: the device dropped off without a goodbye

    @property
    def when(self) -> datetime:
        """`at` as a datetime."""
        return to_datetime(self.at)


@dataclass(frozen=True, slots=True)
class Refill:
    """A new unit in a slot: from a delivered `order`, or bought `elsewhere`; `reported` if a `replaced` event said so."""

    at: datetime
    slot: str
    source: str
    reported: bool


@dataclass(frozen=True, slots=True)
class Truth:
    """What really happened to one device up to `now` (levels in each slot's unit)."""

    now: datetime
    levels: dict[str, float]
    capacity: dict[str, float]
    used: dict[str, float]  # total consumed (or, for a receptacle, filled)
    unmet: dict[str, float]  # demand that found the slot empty (or the receptacle full)
    empty_at: dict[str, tuple[datetime, ...]]  # each time the slot ran empty (a receptacle: full)
    refills: tuple[Refill, ...]
    away: tuple[tuple[datetime, datetime], ...]  # the household's trips that began by `now`
    offline: tuple[tuple[datetime, datetime], ...]  # offline spells that began by `now`
    reboots: tuple[datetime, ...]
    sessions: int
    activity: float  # pages, cups, grams, litres or cycles, as the kind counts them
    clock_offset_s: float  # device clock minus true time, now
    history: tuple[tuple[datetime, dict[str, float]], ...] = field(default=())  # per report, when recorded
