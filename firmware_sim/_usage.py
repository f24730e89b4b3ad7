"""Household rhythms shared by every device kind: days, weeks, busy days, household size, time away.

Pure functions of a `random.Random` and epoch seconds; no MQTT, no wall clock. Every constant
cites the section of /work/shared/USAGE_FIGURES.md it comes from; "assumption" marks a value the
figures do not give (documented in docs/simulator.md).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate

__all__ = [
    "DAY",
    "HOUR",
    "Household",
    "Rhythm",
    "away_periods",
    "make_household",
    "poisson",
]

HOUR = 3600.0
DAY = 86400.0

# USAGE_FIGURES §3: German household sizes 1p 42 %, 2p 34 %, 3p 12 %, 4p 9 %, 5+ 3 % (mean 1.99).
HOUSEHOLD_SIZES = (1, 2, 3, 4, 5)
HOUSEHOLD_SIZE_WEIGHTS = (42, 34, 12, 9, 3)
# assumption: households live in a handful of time zones (UTC offset in hours); rhythms are local.
UTC_OFFSETS_H = (-5, 0, 1, 1, 1, 8)

# USAGE_FIGURES §9, Germany: 78 % take at least one holiday of >= 5 days a year ...
MAIN_HOLIDAY_P = 0.78
# ... lasting 12.3 days on average (9.9-13.0 by year; 10.3 singles to 13.5 retirees): triangular 7..18, mode 12.
MAIN_HOLIDAY_DAYS = (7.0, 18.0, 12.0)
# §9 EU seasonality: Jul 16.1 %, Aug 17.2 %, Jun-Sep 51.9 % (so Jun and Sep 9.3 % each), the rest 48.1 % / 8.
MONTH_WEIGHTS = (6.0, 6.0, 6.0, 6.0, 6.0, 9.3, 16.1, 17.2, 9.3, 6.0, 6.0, 6.0)
# §9 Germany: ~76 M short trips (2-4 days) by ~55 M people a year: 1.4 short trips per person-year (D).
SHORT_TRIPS_PER_YEAR = 1.4
SHORT_TRIP_DAYS = (2, 4)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass(frozen=True, slots=True)
class Rhythm:
    """When use happens: relative weights per local hour (24) and per weekday (7, Monday first), and busy days."""

    hourly: tuple[float, ...]
    weekly: tuple[float, ...] = (1.0,) * 7
    busy_p: float = 0.0  # chance that a day is a busy day (guests, a school project, a hot day)
    busy_factor: float = 1.0  # how much more happens on a busy day

    def day_factor(self, rng: random.Random, weekday: int) -> float:
        """The rate multiplier of one day: its weekday weight, times the busy factor on a busy day."""
        busy = self.busy_factor if self.busy_p and rng.random() < self.busy_p else 1.0
        return self.weekly[weekday] * 7.0 / _weekly_sum(self.weekly) * busy

    def hour_of_day(self, rng: random.Random) -> float:
        """A local time of day in seconds, drawn from the hourly weights."""
        cdf = _cdf(self.hourly)
        return (bisect_left(cdf, rng.random() * cdf[-1]) + rng.random()) * HOUR

    def mean_factor(self) -> float:
        """The long-run mean of `day_factor` (busy days included)."""
        return 1.0 + self.busy_p * (self.busy_factor - 1.0)


@lru_cache(maxsize=64)
def _cdf(weights: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(accumulate(weights))


@lru_cache(maxsize=64)
def _weekly_sum(weights: tuple[float, ...]) -> float:
    return sum(weights)


@dataclass(frozen=True, slots=True)
class Household:
    """Who lives with the device: size, time zone, scale of their use, and the seed of their trips."""

    persons: int
    utc_offset_h: int
    scale: float  # multiplies every kind's mean use; lognormal around 1
    trips_seed: int
    p_away: float = MAIN_HOLIDAY_P


def make_household(rng: random.Random, p_away: float = MAIN_HOLIDAY_P, scale_sigma: float = 0.35) -> Household:
    """A household drawn from USAGE_FIGURES §3 sizes, with its own spread of use and trips."""
    persons = rng.choices(HOUSEHOLD_SIZES, HOUSEHOLD_SIZE_WEIGHTS)[0]
    # exp(N(-s^2/2, s)) has mean 1: the population mean stays at the cited figure.
    scale = math.exp(rng.gauss(-scale_sigma * scale_sigma / 2, scale_sigma))
    return Household(persons, rng.choice(UTC_OFFSETS_H), scale, rng.getrandbits(48), p_away)


def away_periods(household: Household, year: int) -> tuple[tuple[float, float], ...]:
    """The household's trips starting in `year` (UTC epoch seconds, merged, sorted), from USAGE_FIGURES §9."""
    return _away_periods(household.trips_seed, household.p_away, household.utc_offset_h, year)


@lru_cache(maxsize=65536)
def _away_periods(trips_seed: int, p_away: float, utc_offset_h: int, year: int) -> tuple[tuple[float, float], ...]:
    if p_away <= 0:
        return ()
    rng = random.Random(trips_seed * 10_007 + year)
    y0 = datetime(year, 1, 1, tzinfo=UTC).timestamp() - utc_offset_h * HOUR
    trips: list[tuple[float, float]] = []
    if rng.random() < min(p_away, 1.0):
        month = rng.choices(range(12), MONTH_WEIGHTS)[0]
        m0 = datetime(year, month + 1, 1, tzinfo=UTC).timestamp() - utc_offset_h * HOUR
        start = m0 + math.floor(rng.random() * 28) * DAY + 8 * HOUR  # leave in the morning
        trips.append((start, start + round(rng.triangular(*MAIN_HOLIDAY_DAYS)) * DAY))
    for _ in range(poisson(rng, SHORT_TRIPS_PER_YEAR * p_away / MAIN_HOLIDAY_P)):
        friday = y0 + (math.floor(rng.random() * 52) * 7 + (4 - datetime(year, 1, 1).weekday()) % 7) * DAY
        start = friday + 16 * HOUR  # assumption: short breaks leave on a Friday afternoon
        trips.append((start, start + rng.randint(*SHORT_TRIP_DAYS) * DAY))
    trips.sort()
    merged: list[tuple[float, float]] = []
    for s, e in trips:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return tuple(merged)
