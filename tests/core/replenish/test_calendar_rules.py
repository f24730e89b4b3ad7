"""Known answers for the rules of time away (replenish/calendars/rules.py): typed ranges, words, merging."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from replenish.calendars import AwayPeriod, AwayRule, CalendarEvent, check_range, merge_periods, parse_words, range_period, zone

TODAY = date(2026, 12, 8)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_a_typed_range_is_whole_local_days_across_a_dst_change() -> None:
    # 24 October to 1 November 2026 inclusive in Berlin: CEST at the start, CET at the end (25 October).
    assert range_period(date(2026, 10, 24), date(2026, 11, 1), zone("Europe/Berlin")) == (_utc(2026, 10, 23, 22), _utc(2026, 11, 1, 23))
    assert range_period(date(2026, 3, 7), date(2026, 3, 7), zone("America/New_York")) == (_utc(2026, 3, 7, 5), _utc(2026, 3, 8, 5))


@pytest.mark.parametrize(
    ("first", "last", "reason"),
    [
        (date(2026, 12, 20), date(2026, 12, 19), "before the first day"),
        (date(2027, 1, 1), date(2027, 7, 3), "at most 183 days"),
        (date(2026, 8, 1), date(2026, 9, 8), "more than 90 days ago"),
        (date(2030, 1, 1), date(2030, 1, 2), "three years ahead"),
    ],
)
def test_a_typed_range_that_cannot_be_meant_is_refused_with_its_reason(first: date, last: date, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_range(first, last, TODAY)


def test_typed_ranges_that_can_be_meant_pass() -> None:
    check_range(date(2026, 12, 8), date(2026, 12, 8), TODAY)  # one day, today
    check_range(date(2026, 9, 1), date(2026, 9, 9), TODAY)  # 90 days ago still explains slow use
    check_range(date(2027, 1, 1), date(2027, 7, 2), TODAY)  # 183 days


def test_words_match_summary_or_categories_case_insensitively() -> None:
    rule = AwayRule(False, parse_words(" Urlaub, away ,, URLAUB"))
    assert rule.words == ("Urlaub", "away")
    assert rule.matches(CalendarEvent(_utc(2026, 1, 1), _utc(2026, 1, 2), "Sommer-URLAUB"))
    assert rule.matches(CalendarEvent(_utc(2026, 1, 1), _utc(2026, 1, 2), "Trip", ("Away",)))
    assert not rule.matches(CalendarEvent(_utc(2026, 1, 1), _utc(2026, 1, 2), "Dentist", ("Health",)))
    assert AwayRule(True).matches(CalendarEvent(_utc(2026, 1, 1), _utc(2026, 1, 2), "Dentist"))
    with pytest.raises(ValueError, match="at least one word"):
        parse_words(" , ")


def test_unknown_zone_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("../../etc/passwd")


def test_overlapping_and_touching_periods_merge_and_name_each_source_once() -> None:
    periods = [
        AwayPeriod(_utc(2026, 7, 10), _utc(2026, 7, 20), "Family", "Italy"),
        AwayPeriod(_utc(2026, 7, 1), _utc(2026, 7, 5), "Dates I typed", "away"),
        AwayPeriod(_utc(2026, 7, 20), _utc(2026, 7, 22), "Dates I typed", "away"),  # touches Italy's end
        AwayPeriod(_utc(2026, 7, 12), _utc(2026, 7, 14), "Family", "Italy"),  # inside, same source and summary
    ]
    assert merge_periods(periods) == [
        AwayPeriod(_utc(2026, 7, 1), _utc(2026, 7, 5), "Dates I typed", "away"),
        AwayPeriod(_utc(2026, 7, 10), _utc(2026, 7, 22), "Family + Dates I typed", "Italy + away"),
    ]
    assert merge_periods([]) == []
