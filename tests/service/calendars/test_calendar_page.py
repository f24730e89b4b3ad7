"""The household's time-away page and its JSON, edge to edge: login, CSRF, typed ranges, uploads, feeds, rules, only its own."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from replenish.bootstrap import Service
from replenish.settings import Settings
from replenish.web import CalendarPages, Pages, create_app

from .feed_server import feed_server

NOW = datetime(2026, 12, 8, 9, tzinfo=UTC)
PASSWORD = "long enough password"
# Every Friday 17:00 to Sunday 20:00 in New York from 4 December 2026, three times: the cabin.
CABIN = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//page//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:cabin@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;TZID=America/New_York:20261204T170000\r\n"
    b"DTEND;TZID=America/New_York:20261206T200000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Cabin weekend\r\nCATEGORIES:Away\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:gym@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;TZID=America/New_York:20261209T070000\r\n"
    b"DTEND;TZID=America/New_York:20261209T080000\r\nSUMMARY:Gym\r\nEND:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)


def _text(page: httpx.Response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def _app(service: Service) -> FastAPI:
    pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, service.clock)
    return create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", "", calendars=CalendarPages(service.calendars, service.feeds, service.clock))


def _as(app: FastAPI, email: str, visit: Callable[[httpx.AsyncClient, str], Awaitable[None]]) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", follow_redirects=True) as web:
            csrf = (await web.get("/login")).text.split('name="csrf" value="')[1].split('"')[0]
            assert (await web.post("/login", data={"email": email, "password": PASSWORD, "csrf": csrf})).status_code == 200
            # Logging in starts a new session, with a token of its own.
            await visit(web, (await web.get("/calendars")).text.split('name="csrf" value="')[1].split('"')[0])

    asyncio.run(run())


def test_a_household_types_uploads_subscribes_and_sees_its_time_away_and_only_its_own(db_url: str) -> None:
    service = Service(Settings(env="test", database_url=db_url, clock_start=NOW, clock_speed=1.0, calendar_allow_private=True, calendar_timeout_seconds=1.0))
    service.migrate()
    a = service.households.create("a@example.org", "A", PASSWORD)
    service.households.create("b@example.org", "B", PASSWORD)
    app = _app(service)
    ids: dict[str, int] = {}

    async def household_a(web: httpx.AsyncClient, csrf: str) -> None:
        assert "No time away planned." in _text(await web.get("/calendars"))
        assert (await web.post("/calendars/ranges", data={"first_day": "2026-12-20", "last_day": "2027-01-03"})).status_code == 422, "no CSRF token"
        forged = await web.post("/calendars/ranges", data={"first_day": "2026-12-20", "last_day": "2027-01-03", "csrf": "forged"})
        assert forged.status_code == 403
        for first, last, reason in (
            ("2026-12-20", "2026-12-19", "Not added: the last day is before the first day."),
            ("2027-01-01", "2027-12-31", "Not added: a range spans at most 183 days; split a longer absence."),
            ("2025-06-01", "2025-06-10", "Not added: the range ended more than 90 days ago."),
            ("20.12.2026", "2026-12-21", "Not added: the first day is not a date (YYYY-MM-DD)."),
        ):
            page = await web.post("/calendars/ranges", data={"first_day": first, "last_day": last, "csrf": csrf})
            assert page.status_code == 200 and reason in _text(page), _text(page)
        page = await web.post("/calendars/ranges", data={"first_day": "2026-12-20", "last_day": "2027-01-03", "note": "Christmas at grandma's", "csrf": csrf})
        assert "Away from 20 Dec 2026 to 03 Jan 2027" in _text(page)

        bad = await web.post("/calendars/upload", data={"csrf": csrf}, files={"file": ("broken.ics", b"BEGIN:VCALENDAR\r\nnot a line\r\nEND:VCALENDAR\r\n", "text/calendar")})
        assert bad.status_code == 200 and "broken.ics was not added: the file is not valid iCalendar" in _text(bad)
        huge = await web.post("/calendars/upload", data={"csrf": csrf}, files={"file": ("huge.ics", b"BEGIN:VCALENDAR\r\n" + b"X" * (1 << 20), "text/calendar")})
        assert "huge.ics was not added: the file is larger than 1024 KiB." in _text(huge)
        ok = await web.post("/calendars/upload", data={"csrf": csrf, "name": "Cabin"}, files={"file": ("cabin.ics", CABIN, "text/calendar")})
        assert "Calendar added." in _text(ok)

        data = (await web.get("/api/calendars")).json()
        cabin = next(c for c in data["calendars"] if c["name"] == "Cabin")
        ids["cabin"], ids["range"] = cabin["id"], data["ranges"][0]["id"]
        assert cabin["whole"] is True and cabin["has_copy"] is True and "body" not in cabin
        assert ["Gym" in p["summary"] for p in data["away"]].count(True) == 1, "the whole calendar: the gym counts"
        page = await web.post(f"/calendars/{cabin['id']}/rule", data={"rule": "words", "words": " ", "csrf": csrf})
        assert "Rule not changed: give at least one word" in _text(page)
        await web.post(f"/calendars/{cabin['id']}/rule", data={"rule": "words", "words": "away, urlaub", "csrf": csrf})
        data = (await web.get("/api/calendars")).json()
        # Fri 17:00 to Sun 20:00 New York (EST) is 22:00 Friday to 01:00 Monday UTC; the first weekend is over already.
        assert [(p["start"], p["end"], p["source"], p["summary"]) for p in data["away"]] == [
            ("2026-12-11T22:00:00Z", "2026-12-14T01:00:00Z", "Cabin", "Cabin weekend"),
            # The second weekend runs into the typed range (20 December, Berlin): one period, both sources.
            ("2026-12-18T22:00:00Z", "2027-01-03T23:00:00Z", "Cabin + Dates I typed", "Cabin weekend + Christmas at grandma's"),
        ], data["away"]

        with feed_server(CABIN) as server:
            page = await web.post("/calendars/feeds", data={"url": server.url(), "name": "Shared", "csrf": csrf})
            assert "Feed added and read." in _text(page)
            server.mode = "error"
            service.feeds.refresh_due(NOW.replace(hour=11))  # the tick's refresh, an hour and more later
        text = _text(await web.get("/calendars"))
        assert "Last fetch failed at Dec 08 11:00 UTC: the feed answered HTTP 500. Using the copy of Dec 08 09:00 UTC." in text
        page = await web.post("/calendars/feeds", data={"url": "ftp://example.org/cal.ics", "csrf": csrf})
        assert "Feed not added: a feed URL starts with https://" in _text(page)

        page = await web.post("/calendars/timezone", data={"timezone": "Mars/Olympus", "csrf": csrf})
        assert "Time zone not changed: unknown time zone 'Mars/Olympus'" in _text(page)
        page = await web.post("/calendars/timezone", data={"timezone": "America/New_York", "csrf": csrf})
        assert "Your time zone is America/New_York." in _text(page)
        typed = [p for p in (await web.get("/api/calendars")).json()["away"] if "Dates I typed" in p["source"]]
        assert typed[-1]["end"] == "2027-01-04T05:00:00Z", "the typed days are now New York's"

    async def household_b(web: httpx.AsyncClient, csrf: str) -> None:
        data = (await web.get("/api/calendars")).json()
        assert data == {"timezone": "Europe/Berlin", "calendars": [], "ranges": [], "away": []}
        assert (await web.post(f"/calendars/ranges/{ids['range']}/delete", data={"csrf": csrf})).status_code == 404
        assert (await web.post(f"/calendars/{ids['cabin']}/rule", data={"rule": "whole", "csrf": csrf})).status_code == 404
        assert (await web.post(f"/calendars/{ids['cabin']}/delete", data={"csrf": csrf})).status_code == 404
        assert "Cabin" not in (await web.get("/calendars")).text

    _as(app, "a@example.org", household_a)
    _as(app, "b@example.org", household_b)
    assert a.id is not None and len(service.calendars.calendars(a.id)) == 3, "B changed nothing of A's"

    async def remove(web: httpx.AsyncClient, csrf: str) -> None:
        await web.post(f"/calendars/ranges/{ids['range']}/delete", data={"csrf": csrf})
        await web.post(f"/calendars/{ids['cabin']}/delete", data={"csrf": csrf})
        data = (await web.get("/api/calendars")).json()
        assert data["ranges"] == [] and [c["name"] for c in data["calendars"]] == ["Dates I typed", "Shared"]

    _as(app, "a@example.org", remove)
    async def anonymous() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as web:
            assert (await web.get("/calendars")).status_code == 303
            assert (await web.get("/api/calendars")).status_code == 401

    asyncio.run(anonymous())
    service.stop()
