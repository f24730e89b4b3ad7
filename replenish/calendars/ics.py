"""An .ics file as the event occurrences in a window: RRULE, RDATE, EXDATE, TZID, all-day and floating times.

Pure: bytes, the household's zone and the window in, `CalendarEvent`s in UTC out. Google's
exports write floating times with the zone in `X-WR-TIMEZONE`; `x_wr_timezone` makes them
standard first. A time with no zone at all is local time in the household's zone (RFC 5545
3.3.5, "floating"), and an all-day date means the whole local day there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import x_wr_timezone

from .rules import CalendarEvent

__all__ = ["MAX_ICS_BYTES", "MAX_OCCURRENCES", "CalendarError", "parse_ics"]

MAX_ICS_BYTES = 1 << 20  # a year of a busy family calendar is some 100-300 KiB
# A weekly event over the window is ~100 occurrences; a FREQ=MINUTELY rule would be half a million.
MAX_OCCURRENCES = 5000


class CalendarError(ValueError):
    """A calendar file we cannot read; the message says why, in words a household reads."""


def parse_ics(data: bytes, tz: ZoneInfo, start: datetime, end: datetime, max_occurrences: int = MAX_OCCURRENCES) -> list[CalendarEvent]:
    """The occurrences of the file's events that overlap [start, end), sorted; raises CalendarError."""
    if len(data) > MAX_ICS_BYTES:
        raise CalendarError(f"the file is larger than {MAX_ICS_BYTES // 1024} KiB")
    if not data.lstrip(b"\xef\xbb\xbf \r\n\t").upper().startswith(b"BEGIN:VCALENDAR"):
        raise CalendarError("this is not an iCalendar file (it does not begin with BEGIN:VCALENDAR)")
    try:
        cal = icalendar.Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CalendarError(f"the file is not valid iCalendar: {_short(exc)}") from None
    if isinstance(cal, list):  # several calendars concatenated: read the first, as clients do
        cal = cal[0]
    try:
        cal = x_wr_timezone.to_standard(cal)
        query = recurring_ical_events.of(cal)
        events: list[CalendarEvent] = []
        # after() yields occurrences by start from the window's beginning, lazily: a runaway rule stops at the cap.
        for component in query.after(start):
            event = _event(component, tz)
            if event.start >= end:
                break
            if event.end <= start:
                continue
            events.append(event)
            if len(events) > max_occurrences:
                raise CalendarError(f"the file has more than {max_occurrences} events in the coming months; is a rule repeating too often?")
    except CalendarError:
        raise
    except Exception as exc:  # noqa: BLE001 - icalendar and its helpers raise many kinds for malformed values
        raise CalendarError(f"an event could not be read: {_short(exc)}") from None
    return sorted(events, key=lambda e: (e.start, e.end, e.summary))


def _event(component: Any, tz: ZoneInfo) -> CalendarEvent:
    start = component.get("DTSTART")
    if start is None:
        raise CalendarError("an event has no DTSTART")
    begin = _utc(start.dt, tz)
    stop = component.get("DTEND")
    if stop is not None:
        finish = _utc(stop.dt, tz)
    elif component.get("DURATION") is not None:
        finish = begin + component.get("DURATION").dt
    else:  # RFC 5545 3.6.1: an all-day event without an end is that one day; a timed one is an instant
        finish = _utc(start.dt + timedelta(days=1), tz) if not isinstance(start.dt, datetime) else begin
    summary = str(component.get("SUMMARY", "")).strip()[:200]
    return CalendarEvent(begin, max(begin, finish), summary, _categories(component))


def _utc(value: date | datetime, tz: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())  # a whole local day starts at local midnight
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)  # floating: the household's local time
    return value.astimezone(UTC)


def _categories(component: Any) -> tuple[str, ...]:
    found: list[str] = []
    raw = component.get("CATEGORIES")
    for prop in raw if isinstance(raw, list) else ([raw] if raw is not None else []):
        found.extend(str(c).strip() for c in getattr(prop, "cats", ()) if str(c).strip())
    return tuple(found)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
