"""Calendar feeds against a real HTTP server on 127.0.0.1: ETag and 304, failures keep the last good copy, limits, the SSRF rule."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.engine import Engine

from gateway.clock import ManualClock
from replenish.calendars import DEFAULT_WORDS, AwayRule, Calendars, FeedLimits, Feeds
from replenish.households import Households

from .feed_server import feed_server

NOW = datetime(2026, 12, 8, 9, tzinfo=UTC)
FAMILY = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//feed//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:ski@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;VALUE=DATE:20270102\r\nDTEND;VALUE=DATE:20270109\r\nSUMMARY:Ski holiday\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:dentist@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261215T090000Z\r\nDTEND:20261215T100000Z\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)
SKI = (datetime(2027, 1, 1, 23, tzinfo=UTC), datetime(2027, 1, 8, 23, tzinfo=UTC))  # 2-8 January in Berlin


def _setup(engine: Engine, limits: FeedLimits) -> tuple[Calendars, Feeds, int, httpx.Client, ManualClock]:
    clock = ManualClock(NOW)
    household = Households(engine, clock).create("feed@example.org", "Feed", "long enough password")
    assert household.id is not None
    http = httpx.Client(follow_redirects=False, trust_env=False)
    return Calendars(engine, clock), Feeds(engine, http, clock, limits), household.id, http, clock


def test_a_feed_is_fetched_conditionally_and_a_failing_one_keeps_its_last_good_copy(engine: Engine) -> None:
    calendars, feeds, hh, http, clock = _setup(engine, FeedLimits(timeout_s=1.0, allow_private=True, max_bytes=1 << 20))
    with feed_server(FAMILY) as server:
        feed = calendars.add_feed(hh, "Family", server.url())
        assert feed.id is not None
        calendars.set_rule(hh, feed.id, AwayRule(False, DEFAULT_WORDS))  # the dentist is no absence
        assert feeds.refresh(feed.id, clock.now()) is None
        (kept,) = calendars.calendars(hh)
        assert (kept.body, kept.etag, kept.last_modified, kept.fetched_at, kept.error) == (FAMILY, '"v1"', "Mon, 07 Dec 2026 10:00:00 GMT", NOW, None)
        assert [(p.start, p.end, p.source, p.summary) for p in calendars.away(hh, NOW, NOW + timedelta(days=365))] == [(*SKI, "Family", "Ski holiday")]

        clock.advance(3600)
        assert feeds.refresh(feed.id, clock.now()) is None
        assert server.requests[-1]["if-none-match"] == '"v1"' and server.requests[-1]["if-modified-since"] == "Mon, 07 Dec 2026 10:00:00 GMT"
        (kept,) = calendars.calendars(hh)
        assert (kept.body, kept.fetched_at, kept.checked_at) == (FAMILY, NOW + timedelta(hours=1), NOW + timedelta(hours=1)), "304: the copy stays, and is current"

        for mode, reason in (
            ("error", "the feed answered HTTP 500"),
            ("huge", "the feed is larger than 1024 KiB"),
            ("huge-declared", "the feed is larger than 1024 KiB"),
            ("html", "not an iCalendar file"),
            ("slow", "did not answer within 1 s"),
        ):
            server.mode = mode
            clock.advance(3600)
            started = time.monotonic()
            assert feeds.refresh(feed.id, clock.now()) is not None
            assert time.monotonic() - started < 2.5, mode
            (kept,) = calendars.calendars(hh)
            assert reason in (kept.error or ""), (mode, kept.error)
            assert (kept.body, kept.fetched_at, kept.checked_at) == (FAMILY, NOW + timedelta(hours=1), clock.now()), f"{mode}: the last good copy stays"
            assert [(p.start, p.end) for p in calendars.away(hh, NOW, NOW + timedelta(days=365))] == [SKI]

        server.mode, server.etag = "ok", '"v2"'
        server.body = FAMILY.replace(b"20270109", b"20270110")
        clock.advance(3600)
        assert feeds.refresh(feed.id, clock.now()) is None
        (kept,) = calendars.calendars(hh)
        assert (kept.error, kept.etag, kept.fetched_at) == (None, '"v2"', clock.now())
        assert [p.end for p in calendars.away(hh, NOW, NOW + timedelta(days=365))] == [SKI[1] + timedelta(days=1)]
    http.close()


def test_redirects_are_followed_and_due_feeds_are_refreshed_once_per_interval(engine: Engine) -> None:
    calendars, feeds, hh, http, clock = _setup(engine, FeedLimits(timeout_s=2.0, allow_private=True, every=timedelta(hours=1), per_tick=5))
    with feed_server(FAMILY) as server:
        server.mode = "redirect"
        feed = calendars.add_feed(hh, "Moved", server.url())
        assert feeds.refresh_due(clock.now()) == 1
        assert [r["path"] for r in server.requests] == ["/family.ics", "/moved.ics"]
        assert calendars.calendars(hh)[0].body == FAMILY
        clock.advance(59 * 60)
        assert feeds.refresh_due(clock.now()) == 0, "not due before an hour"
        clock.advance(60)
        assert feeds.refresh_due(clock.now()) == 1 and len(server.requests) == 4
        assert feed.id is not None
    http.close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/x.ics", "not on the public internet"),
        ("http://localhost:9/x.ics", "not on the public internet"),
        ("http://[::1]:9/x.ics", "not on the public internet"),
        ("http://10.0.0.7/x.ics", "not on the public internet"),
        ("http://169.254.169.254/latest/meta-data/", "not on the public internet"),  # cloud metadata
        ("http://0x7f000001/x.ics", "not on the public internet"),
        ("http://[::ffff:192.168.1.1]/x.ics", "not on the public internet"),
        ("file:///etc/passwd", "starts with https://"),
        ("gopher://example.org/", "starts with https://"),
        ("https://user:pw@example.org/x.ics", "no user name or password"),
    ],
)
def test_feeds_on_private_addresses_and_other_schemes_are_refused(engine: Engine, url: str, reason: str) -> None:
    calendars, feeds, hh, http, clock = _setup(engine, FeedLimits(timeout_s=1.0))  # private addresses not allowed: the default
    feed = calendars.add_feed(hh, "x", url)
    assert feed.id is not None
    error = feeds.refresh(feed.id, clock.now())
    assert error is not None and reason in error
    assert calendars.calendars(hh)[0].error == error
    http.close()


def test_a_private_address_is_refused_even_when_a_redirect_leads_there(engine: Engine) -> None:
    # The server itself is on loopback, so the first hop is refused already; a public host
    # redirecting inward meets the same check at each hop (feeds.py: fetch).
    calendars, feeds, hh, http, clock = _setup(engine, FeedLimits(timeout_s=1.0))
    with feed_server(FAMILY) as server:
        feed = calendars.add_feed(hh, "x", server.url())
        assert feed.id is not None
        assert "not on the public internet" in (feeds.refresh(feed.id, clock.now()) or "")
        assert server.requests == [], "nothing was sent to it"
    http.close()
