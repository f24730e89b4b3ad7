"""Which events mean "away", typed date ranges, and merging periods: pure rules, "now" and windows are arguments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_TIMEZONE",
    "DEFAULT_WORDS",
    "MAX_RANGE_DAYS",
    "PAST_RANGE_DAYS",
    "AwayPeriod",
    "AwayRule",
    "CalendarEvent",
    "check_range",
    "merge_periods",
    "parse_words",
    "periods_from",
    "range_period",
    "zone",
]

DEFAULT_TIMEZONE = "Europe/Berlin"
DEFAULT_WORDS = ("vacation", "holiday", "urlaub", "away")
# A German main holiday lasts 12-13 days, a long-haul one 17 (docs/calendars.md): half a year is
# far past any trip and still catches a typo in the year.
MAX_RANGE_DAYS = 183
# Past time away still tells the forecaster that slow use was absence; older than this it is a typo.
PAST_RANGE_DAYS = 90
_MAX_WORDS = 20
_MAX_WORD_LEN = 40


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One occurrence of a calendar event, in UTC, with what a rule can match on."""

    start: datetime
    end: datetime
    summary: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AwayPeriod:
    """A time the household is away (UTC, end exclusive): no delivery, no use (SPEC 4)."""

    start: datetime
    end: datetime
    source: str
    summary: str


@dataclass(frozen=True, slots=True)
class AwayRule:
    """A calendar's rule: every event means away, or only those whose summary or categories hold one of the words."""

    whole: bool
    words: tuple[str, ...] = DEFAULT_WORDS

    def matches(self, event: CalendarEvent) -> bool:
        """Whether this event means away (words match case-insensitively, anywhere in the text)."""
        if self.whole:
            return True
        text = " ".join((event.summary, *event.categories)).casefold()
        return any(w.casefold() in text for w in self.words if w)


def parse_words(text: str) -> tuple[str, ...]:
    """The household's words from a comma-separated field; raises ValueError naming what is wrong."""
    # Matching ignores case, so words that differ only in case are one word.
    seen: dict[str, str] = {}
    for w in (w.strip() for w in text.split(",")):
        if w:
            seen.setdefault(w.casefold(), w)
    words = tuple(seen.values())
    if not words:
        raise ValueError("give at least one word, e.g. vacation, holiday")
    if len(words) > _MAX_WORDS:
        raise ValueError(f"at most {_MAX_WORDS} words")
    if any(len(w) > _MAX_WORD_LEN for w in words):
        raise ValueError(f"a word has at most {_MAX_WORD_LEN} characters")
    return words


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of this name; raises ValueError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name[:64]!r}: use an IANA name such as Europe/Berlin") from None


def range_period(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Whole local days first..last (inclusive) in the household's zone, as a UTC [start, end)."""
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    return start, end


def check_range(first: date, last: date, today: date) -> None:
    """Refuse a typed range that cannot be meant; raises ValueError with the reason a household reads."""
    if last < first:
        raise ValueError("the last day is before the first day")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"a range spans at most {MAX_RANGE_DAYS} days; split a longer absence")
    if last < today - timedelta(days=PAST_RANGE_DAYS):
        raise ValueError(f"the range ended more than {PAST_RANGE_DAYS} days ago")
    if first > today + timedelta(days=3 * 365):
        raise ValueError("the range starts more than three years ahead")


def periods_from(events: Iterable[CalendarEvent], rule: AwayRule, source: str) -> list[AwayPeriod]:
    """The events the rule takes as away, as periods of this source (empty events are no absence)."""
    return [AwayPeriod(e.start, e.end, source, e.summary) for e in events if e.end > e.start and rule.matches(e)]


def merge_periods(periods: Sequence[AwayPeriod]) -> list[AwayPeriod]:
    """Overlapping or touching periods as one, sorted; a merged period names every source and summary once."""
    out: list[AwayPeriod] = []
    for p in sorted(periods, key=lambda p: (p.start, p.end)):
        if out and p.start <= out[-1].end:
            last = out[-1]
            out[-1] = AwayPeriod(last.start, max(last.end, p.end), _join(last.source, p.source), _join(last.summary, p.summary))
        else:
            out.append(p)
    return out


def _join(a: str, b: str) -> str:
    parts = a.split(" + ")
    return a if b in parts or not b else (b if not a else f"{a} + {b}")
