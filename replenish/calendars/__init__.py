"""Calendars of time away: typed ranges, uploaded .ics files, .ics feeds, and which events mean "away" (SPEC 4)."""

from .feeds import FeedError, FeedLimits, Feeds, check_feed_url
from .ics import MAX_ICS_BYTES, MAX_OCCURRENCES, CalendarError, parse_ics
from .rules import DEFAULT_TIMEZONE, DEFAULT_WORDS, AwayPeriod, AwayRule, CalendarEvent, check_range, merge_periods, parse_words, periods_from, range_period, zone
from .store import Calendars, Owners, window

__all__ = [
    "DEFAULT_TIMEZONE",
    "DEFAULT_WORDS",
    "MAX_ICS_BYTES",
    "MAX_OCCURRENCES",
    "AwayPeriod",
    "AwayRule",
    "CalendarError",
    "CalendarEvent",
    "Calendars",
    "FeedError",
    "FeedLimits",
    "Feeds",
    "Owners",
    "check_feed_url",
    "check_range",
    "merge_periods",
    "parse_ics",
    "parse_words",
    "periods_from",
    "range_period",
    "window",
    "zone",
]
