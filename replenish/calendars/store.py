"""A household's calendars of time away, stored: typed ranges, uploaded files, feeds; and the away periods they give.

The rules are pure (`rules.py`, `ics.py`); this loads calendars, calls them, stores. `away` is the
port the ordering policy asks ("away periods of household H between a and b"); `provider` is the
forecaster's `AwayProvider` (device ids in, each device's household's periods out).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gateway import Clock

from ..storage import AwayRange, Household, HouseholdCalendar
from .ics import MAX_ICS_BYTES, CalendarError, parse_ics
from .rules import DEFAULT_TIMEZONE, DEFAULT_WORDS, AwayPeriod, CalendarEvent, AwayRule, check_range, merge_periods, periods_from, range_period, zone

__all__ = ["PAST_WINDOW", "Calendars", "Owners", "window"]

log = logging.getLogger(__name__)

TYPED_NAME = "Dates I typed"
MAX_CALENDARS = 20  # per household: a family has a few; more is a script, not a household
PAST_WINDOW = timedelta(days=120)  # time away this far back still explains slow use in the readings a forecast rests on
AHEAD_WINDOW = timedelta(days=366)
_CACHE_SIZE = 1024

# Device ids in, the household that claimed each out (Households.owners).
Owners = Callable[[list[str]], dict[str, int]]


def window(now: datetime) -> tuple[datetime, datetime]:
    """The window the forecaster's periods cover around `now`, in whole UTC days."""
    return _day(now) - PAST_WINDOW, _day(now) + AHEAD_WINDOW


def _day(t: datetime) -> datetime:
    return datetime.combine(t.astimezone(UTC).date(), time(), UTC)


class Calendars:
    """Households' calendars: add, change, remove, and the away periods they give."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._expanded: dict[tuple[str, str, datetime, datetime], list[CalendarEvent]] = {}
        self._lock = threading.Lock()  # the web's threads and the tick share the expansions

    def timezone(self, household: int) -> str:
        """The household's IANA time zone."""
        with Session(self.engine) as s:
            found = s.get(Household, household)
            return found.timezone if found is not None else DEFAULT_TIMEZONE

    def set_timezone(self, household: int, name: str) -> None:
        """Change where the household's all-day and floating calendar times are; raises ValueError for an unknown zone."""
        zone(name.strip())
        with Session(self.engine) as s:
            found = s.get(Household, household)
            if found is None:
                raise LookupError("no such household")
            found.timezone = name.strip()
            s.add(found)
            s.commit()

    def calendars(self, household: int) -> list[HouseholdCalendar]:
        """The household's calendars, oldest first."""
        with Session(self.engine) as s:
            q = select(HouseholdCalendar).where(HouseholdCalendar.household_id == household).order_by(col(HouseholdCalendar.id))
            return list(s.exec(q))

    def ranges(self, household: int) -> list[AwayRange]:
        """The household's typed ranges, by first day."""
        with Session(self.engine) as s:
            q = select(AwayRange).where(AwayRange.household_id == household).order_by(col(AwayRange.first_day), col(AwayRange.id))
            return list(s.exec(q))

    def add_range(self, household: int, first: date, last: date, note: str = "") -> AwayRange:
        """Add whole days away, first to last inclusive; raises ValueError with the reason a household reads."""
        today = self.clock.now().astimezone(zone(self.timezone(household))).date()
        check_range(first, last, today)
        with Session(self.engine) as s:
            typed = s.exec(select(HouseholdCalendar).where(HouseholdCalendar.household_id == household, HouseholdCalendar.kind == "typed")).first()
            if typed is None:
                typed = self._new(s, household, "typed", TYPED_NAME)
            found = AwayRange(calendar_id=typed.id, household_id=household, first_day=first, last_day=last, note=note.strip()[:120], created_at=self.clock.now())
            s.add(found)
            s.commit()
            s.refresh(found)
            return found

    def remove_range(self, household: int, range_id: int) -> None:
        """Remove one of the household's typed ranges; LookupError when it is not theirs."""
        with Session(self.engine) as s:
            found = s.get(AwayRange, range_id)
            if found is None or found.household_id != household:
                raise LookupError("no such range of yours")
            s.delete(found)
            s.commit()

    def add_upload(self, household: int, name: str, data: bytes) -> HouseholdCalendar:
        """Keep an uploaded .ics once it reads; raises CalendarError saying why it does not."""
        self._check(data, self.timezone(household))
        with Session(self.engine) as s:
            found = self._new(s, household, "upload", name.strip()[:80] or "Uploaded calendar")
            found.body, found.fetched_at = data, self.clock.now()
            s.add(found)
            s.commit()
            s.refresh(found)
            return found

    def add_feed(self, household: int, name: str, url: str) -> HouseholdCalendar:
        """Keep a feed's URL; its copy comes with the next refresh (`Feeds`). The URL is checked there too."""
        with Session(self.engine) as s:
            found = self._new(s, household, "feed", name.strip()[:80] or "Calendar feed")
            found.url = url
            s.add(found)
            s.commit()
            s.refresh(found)
            return found

    def set_rule(self, household: int, calendar_id: int, rule: AwayRule) -> None:
        """Which of a calendar's events mean away; LookupError when it is not the household's."""
        with Session(self.engine) as s:
            found = s.get(HouseholdCalendar, calendar_id)
            if found is None or found.household_id != household:
                raise LookupError("no such calendar of yours")
            found.whole, found.words = rule.whole, list(rule.words)
            s.add(found)
            s.commit()

    def remove(self, household: int, calendar_id: int) -> None:
        """Remove a calendar (and its typed ranges); LookupError when it is not the household's."""
        with Session(self.engine) as s:
            found = s.get(HouseholdCalendar, calendar_id)
            if found is None or found.household_id != household:
                raise LookupError("no such calendar of yours")
            for r in s.exec(select(AwayRange).where(AwayRange.calendar_id == calendar_id)):
                s.delete(r)
            s.flush()
            s.delete(found)
            s.commit()

    def away(self, household: int, start: datetime, end: datetime) -> list[AwayPeriod]:
        """The household's away periods overlapping [start, end), merged (the ordering policy's port)."""
        return self.away_of([household], start, end).get(household, [])

    def away_of(self, households: Iterable[int], start: datetime, end: datetime) -> dict[int, list[AwayPeriod]]:
        """Each household's merged away periods overlapping [start, end), in one pass over their calendars."""
        wanted = sorted(set(households))
        if not wanted:
            return {}
        # Whole UTC days around the window: one expansion per file serves every ask within a day.
        lo, hi = _day(start), _day(end) + timedelta(days=1)
        with Session(self.engine) as s:
            zones = dict(s.exec(select(Household.id, Household.timezone).where(col(Household.id).in_(wanted))).all())
            cals = list(s.exec(select(HouseholdCalendar).where(col(HouseholdCalendar.household_id).in_(wanted))))
            ranges = list(s.exec(select(AwayRange).where(col(AwayRange.household_id).in_(wanted))))
        found: dict[int, list[AwayPeriod]] = {h: [] for h in wanted}
        names = {c.id: c.name for c in cals}
        for r in ranges:
            a, b = range_period(r.first_day, r.last_day, zone(zones.get(r.household_id, DEFAULT_TIMEZONE)))
            found[r.household_id].append(AwayPeriod(a, b, names.get(r.calendar_id, TYPED_NAME), r.note or "away"))
        for c in cals:
            if c.body is None:
                continue
            rule = AwayRule(c.whole, tuple(c.words) or DEFAULT_WORDS)
            periods = self._periods(c.body, zones.get(c.household_id, DEFAULT_TIMEZONE), lo, hi)
            found[c.household_id].extend(periods_from(periods, rule, c.name))
        return {h: [p for p in merge_periods(ps) if p.end > start and p.start < end] for h, ps in found.items()}

    def provider(self, owners: Owners, now: datetime) -> Callable[[Sequence[str]], dict[str, list[tuple[datetime, datetime]]]]:
        """The forecaster's AwayProvider at `now`: each device's household's away periods around now."""

        def away(device_ids: Sequence[str]) -> dict[str, list[tuple[datetime, datetime]]]:
            of = owners(list(device_ids))
            lo, hi = window(now)
            periods = self.away_of(of.values(), lo, hi)
            return {d: [(p.start, p.end) for p in periods[h]] for d, h in of.items() if periods.get(h)}

        return away

    def _new(self, s: Session, household: int, kind: str, name: str) -> HouseholdCalendar:
        count = len(s.exec(select(HouseholdCalendar.id).where(HouseholdCalendar.household_id == household)).all())
        if count >= MAX_CALENDARS:
            raise ValueError(f"a household keeps at most {MAX_CALENDARS} calendars; remove one first")
        found = HouseholdCalendar(household_id=household, kind=kind, name=name, whole=True, words=list(DEFAULT_WORDS), created_at=self.clock.now())
        s.add(found)
        s.flush()
        return found

    def _check(self, data: bytes, tz: str) -> None:
        lo, hi = window(self.clock.now())
        if len(data) > MAX_ICS_BYTES:
            raise CalendarError(f"the file is larger than {MAX_ICS_BYTES // 1024} KiB")
        parse_ics(data, zone(tz), lo, hi)

    def _periods(self, body: bytes, tz: str, lo: datetime, hi: datetime) -> list[CalendarEvent]:
        """The file's events over the window, expanded once per (file, zone, window): the forecaster asks every tick."""
        key = (hashlib.sha256(body).hexdigest(), tz, lo, hi)
        with self._lock:
            if key in self._expanded:
                return self._expanded[key]
        try:
            events = parse_ics(body, zone(tz), lo, hi)
        except CalendarError as exc:  # it read when it was kept; another window can still cross the cap
            log.warning("a stored calendar no longer reads: %s", exc)
            events = []
        with self._lock:
            if len(self._expanded) >= _CACHE_SIZE:
                self._expanded.pop(next(iter(self._expanded)))
            self._expanded[key] = events
        return events
