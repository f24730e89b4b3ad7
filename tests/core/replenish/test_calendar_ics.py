"""Known answers for reading .ics files into occurrences (replenish/calendars/ics.py): zones, recurrences, all-day, Google's exports."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from replenish.calendars import AwayRule, CalendarError, merge_periods, parse_ics, periods_from

BERLIN = ZoneInfo("Europe/Berlin")
YEAR = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def _ics(*events: str, head: str = "") -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\nUID:{i}@test\r\nDTSTAMP:20260101T000000Z\r\n{e.strip()}\r\nEND:VEVENT\r\n" for i, e in enumerate(events))
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//test//EN\r\n{head}{body}END:VCALENDAR\r\n".replace("\n    ", "\n").encode()


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# Mondays 18:00-20:00 in New York, weekly from 2 March 2026, five times: the US moves to summer
# time on 8 March, the EU on 29 March. The week of 16 March is off (EXDATE); Friday 20 March
# 09:00 is added (RDATE) and keeps the event's two hours.
WEEKLY_NEW_YORK = """
    DTSTART;TZID=America/New_York:20260302T180000
    DTEND;TZID=America/New_York:20260302T200000
    RRULE:FREQ=WEEKLY;COUNT=5
    EXDATE;TZID=America/New_York:20260316T180000
    RDATE;TZID=America/New_York:20260320T090000
    SUMMARY:Away: choir trip
"""


def test_a_weekly_event_in_new_york_keeps_its_local_hour_across_both_dst_changes() -> None:
    events = parse_ics(_ics(WEEKLY_NEW_YORK), BERLIN, *YEAR)
    assert [(e.start, e.end) for e in events] == [
        (_utc(2026, 3, 2, 23), _utc(2026, 3, 3, 1)),  # EST (-5): 00:00 in Berlin
        (_utc(2026, 3, 9, 22), _utc(2026, 3, 10, 0)),  # EDT (-4), Berlin still on CET: 23:00 there
        # 16 March removed by EXDATE
        (_utc(2026, 3, 20, 13), _utc(2026, 3, 20, 15)),  # the RDATE, two hours like the others
        (_utc(2026, 3, 23, 22), _utc(2026, 3, 24, 0)),
        (_utc(2026, 3, 30, 22), _utc(2026, 3, 31, 0)),  # Berlin on CEST now: 00:00 there again
    ]
    assert {e.summary for e in events} == {"Away: choir trip"}
    seen_in_berlin = [e.start.astimezone(BERLIN).strftime("%a %H:%M") for e in events]
    assert seen_in_berlin == ["Tue 00:00", "Mon 23:00", "Fri 14:00", "Mon 23:00", "Tue 00:00"]


def test_an_all_day_multi_day_event_is_whole_local_days_in_the_households_zone() -> None:
    ics = _ics("""
        DTSTART;VALUE=DATE:20260727
        DTEND;VALUE=DATE:20260808
        SUMMARY:Sommerurlaub
        CATEGORIES:Holiday,Family
    """.replace("\n        ", "\n"))
    (berlin,) = parse_ics(ics, BERLIN, *YEAR)
    assert (berlin.start, berlin.end) == (_utc(2026, 7, 26, 22), _utc(2026, 8, 7, 22))  # 27 July to 7 August inclusive, CEST
    assert berlin.categories == ("Holiday", "Family")
    (tokyo,) = parse_ics(ics, ZoneInfo("Asia/Tokyo"), *YEAR)
    assert (tokyo.start, tokyo.end) == (_utc(2026, 7, 26, 15), _utc(2026, 8, 7, 15))
    one_day = _ics("DTSTART;VALUE=DATE:20261224\r\nSUMMARY:Christmas away")
    assert [(e.start, e.end) for e in parse_ics(one_day, BERLIN, *YEAR)] == [(_utc(2026, 12, 23, 23), _utc(2026, 12, 24, 23))]


def test_a_google_export_reads_its_floating_times_in_x_wr_timezone() -> None:
    # Google writes UTC or floating times and names the calendar's zone in X-WR-TIMEZONE.
    ics = _ics(
        "DTSTART:20260105T090000\r\nDTEND:20260105T170000\r\nRRULE:FREQ=WEEKLY;COUNT=2\r\nSUMMARY:Away at the office",
        head="X-WR-CALNAME:Family\r\nX-WR-TIMEZONE:America/Los_Angeles\r\n",
    )
    assert [(e.start, e.end) for e in parse_ics(ics, BERLIN, *YEAR)] == [
        (_utc(2026, 1, 5, 17), _utc(2026, 1, 6, 1)),
        (_utc(2026, 1, 12, 17), _utc(2026, 1, 13, 1)),
    ]
    # Without the header a floating time is the household's own local time.
    plain = _ics("DTSTART:20260105T090000\r\nDTEND:20260105T170000\r\nSUMMARY:x")
    assert [(e.start, e.end) for e in parse_ics(plain, BERLIN, *YEAR)] == [(_utc(2026, 1, 5, 8), _utc(2026, 1, 5, 16))]


def test_only_occurrences_overlapping_the_window_are_read() -> None:
    ics = _ics(WEEKLY_NEW_YORK)
    window = (_utc(2026, 3, 10), _utc(2026, 3, 24))
    assert [e.start for e in parse_ics(ics, BERLIN, *window)] == [_utc(2026, 3, 20, 13), _utc(2026, 3, 23, 22)]
    ongoing = parse_ics(ics, BERLIN, _utc(2026, 3, 2, 23, 30), _utc(2026, 3, 3))
    assert [e.start for e in ongoing] == [_utc(2026, 3, 2, 23)], "an event that began before the window and is still on"


def test_keyword_rule_and_whole_calendar_rule_over_one_file_and_the_merge() -> None:
    ics = _ics(
        "DTSTART;VALUE=DATE:20260601\r\nDTEND;VALUE=DATE:20260605\r\nSUMMARY:Dentist week",
        "DTSTART;VALUE=DATE:20260603\r\nDTEND;VALUE=DATE:20260610\r\nSUMMARY:Camping\r\nCATEGORIES:VACATION",
        "DTSTART;VALUE=DATE:20260609\r\nDTEND;VALUE=DATE:20260612\r\nSUMMARY:Urlaub in Rom",
        "DTSTART;VALUE=DATE:20260701\r\nDTEND;VALUE=DATE:20260702\r\nSUMMARY:Holidayinn booking",
    )
    events = parse_ics(ics, BERLIN, *YEAR)
    words = periods_from(events, AwayRule(False, ("vacation", "urlaub")), "Family")
    assert [p.summary for p in words] == ["Camping", "Urlaub in Rom"], "CATEGORIES and SUMMARY match, case-insensitively"
    merged = merge_periods(words)
    assert [(p.start, p.end, p.source, p.summary) for p in merged] == [(_utc(2026, 6, 2, 22), _utc(2026, 6, 11, 22), "Family", "Camping + Urlaub in Rom")]
    whole = merge_periods(periods_from(events, AwayRule(True), "Family"))
    assert [(p.start, p.end) for p in whole] == [(_utc(2026, 5, 31, 22), _utc(2026, 6, 11, 22)), (_utc(2026, 6, 30, 22), _utc(2026, 7, 1, 22))]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not an iCalendar file"),
        (b"<html><body>Sign in</body></html>", "not an iCalendar file"),
        (b"BEGIN:VCALENDAR\r\nthis is not a content line\r\nEND:VCALENDAR\r\n", "not valid iCalendar"),
        (_ics("DTSTART:2026-06-01\r\nSUMMARY:bad date"), "could not be read"),
        (_ics("DTSTART:20260601T000000Z\r\nRRULE:FREQ=MINUTELY\r\nSUMMARY:runaway"), "more than 5000 events"),
        (b"BEGIN:VCALENDAR\r\n" + b"X-PAD:" + b"a" * (1 << 20) + b"\r\nEND:VCALENDAR\r\n", "larger than 1024 KiB"),
    ],
)
def test_a_malformed_file_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(CalendarError, match=reason):
        parse_ics(data, BERLIN, *YEAR)


def test_events_without_an_end_and_zero_length_ones_mean_no_absence() -> None:
    ics = _ics("DTSTART:20260601T100000Z\r\nSUMMARY:reminder", "DTSTART:20260602T100000Z\r\nDURATION:PT3H\r\nSUMMARY:away")
    events = parse_ics(ics, BERLIN, *YEAR)
    assert [(e.start, e.end) for e in events] == [(_utc(2026, 6, 1, 10), _utc(2026, 6, 1, 10)), (_utc(2026, 6, 2, 10), _utc(2026, 6, 2, 13))]
    assert [p.summary for p in periods_from(events, AwayRule(True), "c")] == ["away"]
