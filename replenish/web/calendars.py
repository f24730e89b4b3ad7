"""The household's time away: typed ranges, uploaded .ics files, feeds, their rules, and the away periods they give."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import Clock

from ..calendars import MAX_ICS_BYTES, AwayRule, CalendarError, Calendars, Feeds, check_feed_url, parse_words
from .auth import check_csrf, csrf_token, household_id, require_household
from .pages import TEMPLATES

__all__ = ["CalendarPages", "calendars_router"]

AHEAD = timedelta(days=365)  # the page shows the coming year


@dataclass(frozen=True, slots=True)
class CalendarPages:
    """What the calendar page reads and changes."""

    calendars: Calendars
    feeds: Feeds
    clock: Clock

    def overview(self, household: int) -> dict[str, Any]:
        """The household's zone, calendars, typed ranges, and its away periods of the coming year."""
        now = self.clock.now()
        return {
            "timezone": self.calendars.timezone(household),
            "calendars": self.calendars.calendars(household),
            "ranges": self.calendars.ranges(household),
            "away": self.calendars.away(household, now, now + AHEAD),
        }


def _back(request: Request, message: str, error: bool = False) -> Response:
    request.session["calendar_flash"] = {"text": message, "error": error}
    return RedirectResponse("/calendars", 303)


def _day(value: str, label: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"the {label} is not a date (YYYY-MM-DD)") from None


def calendars_router(pages: CalendarPages) -> APIRouter:
    """The household's calendar routes: the page, its forms, and GET /api/calendars."""
    web = APIRouter()

    @web.get("/calendars", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        household = household_id(request)
        if household is None:
            return RedirectResponse("/login", 303)
        data = await run_in_threadpool(pages.overview, household)
        flash = request.session.pop("calendar_flash", None)
        context = {**data, "csrf": csrf_token(request), "now": pages.clock.now(), "flash": flash, "max_kib": MAX_ICS_BYTES // 1024}
        return TEMPLATES.TemplateResponse(request, "calendars.html", context)

    @web.get("/api/calendars")
    async def api(request: Request) -> dict[str, Any]:
        """The same as the page, as JSON: calendars (no file bodies), typed ranges, away periods of the coming year."""
        data = await run_in_threadpool(pages.overview, require_household(request))
        return {
            "timezone": data["timezone"],
            "calendars": [c.model_dump(exclude={"body", "household_id", "etag", "last_modified"}) | {"has_copy": c.body is not None} for c in data["calendars"]],
            "ranges": [r.model_dump(exclude={"household_id"}) for r in data["ranges"]],
            "away": [{"start": p.start, "end": p.end, "source": p.source, "summary": p.summary} for p in data["away"]],
        }

    @web.post("/calendars/timezone")
    async def timezone(request: Request, timezone: str = Form(...), csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        household = require_household(request)
        try:
            await run_in_threadpool(pages.calendars.set_timezone, household, timezone)
        except ValueError as exc:
            return _back(request, f"Time zone not changed: {exc}.", error=True)
        return _back(request, f"Your time zone is {timezone.strip()}.")

    @web.post("/calendars/ranges")
    async def add_range(request: Request, first_day: str = Form(...), last_day: str = Form(...), note: str = Form(""), csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        household = require_household(request)
        try:
            first, last = _day(first_day, "first day"), _day(last_day, "last day")
            await run_in_threadpool(pages.calendars.add_range, household, first, last, note)
        except ValueError as exc:
            return _back(request, f"Not added: {exc}.", error=True)
        return _back(request, f"Away from {first:%d %b %Y} to {last:%d %b %Y}: nothing will be delivered then.")

    @web.post("/calendars/ranges/{range_id}/delete")
    async def remove_range(request: Request, range_id: int, csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        try:
            await run_in_threadpool(pages.calendars.remove_range, require_household(request), range_id)
        except LookupError:
            raise HTTPException(404, "no such range of yours") from None
        return _back(request, "Range removed.")

    @web.post("/calendars/upload")
    async def upload(request: Request, file: UploadFile = File(...), name: str = Form(""), csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        household = require_household(request)
        data = await file.read(MAX_ICS_BYTES + 1)  # one byte past the cap is enough to refuse it
        try:
            await run_in_threadpool(pages.calendars.add_upload, household, name or (file.filename or ""), data)
        except (CalendarError, ValueError) as exc:
            return _back(request, f"{(file.filename or 'The file')[:80]} was not added: {exc}.", error=True)
        return _back(request, "Calendar added. Choose below which of its events mean you are away.")

    @web.post("/calendars/feeds")
    async def add_feed(request: Request, url: str = Form(...), name: str = Form(""), csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        household = require_household(request)
        try:
            found = await run_in_threadpool(pages.calendars.add_feed, household, name, check_feed_url(url))
        except ValueError as exc:
            return _back(request, f"Feed not added: {exc}.", error=True)
        assert found.id is not None
        error = await run_in_threadpool(pages.feeds.refresh, found.id, pages.clock.now())
        if error:
            return _back(request, f"Feed added, but it could not be read yet: {error}. It is tried again every hour.", error=True)
        return _back(request, "Feed added and read. Choose below which of its events mean you are away.")

    @web.post("/calendars/{calendar_id}/rule")
    async def rule(request: Request, calendar_id: int, rule: str = Form(...), words: str = Form(""), csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        household = require_household(request)
        if rule not in ("whole", "words"):
            raise HTTPException(422, "rule is whole or words")
        try:
            chosen = AwayRule(True) if rule == "whole" else AwayRule(False, parse_words(words))
            await run_in_threadpool(pages.calendars.set_rule, household, calendar_id, chosen)
        except LookupError:
            raise HTTPException(404, "no such calendar of yours") from None
        except ValueError as exc:
            return _back(request, f"Rule not changed: {exc}.", error=True)
        return _back(request, "Rule saved.")

    @web.post("/calendars/{calendar_id}/delete")
    async def remove(request: Request, calendar_id: int, csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        try:
            await run_in_threadpool(pages.calendars.remove, require_household(request), calendar_id)
        except LookupError:
            raise HTTPException(404, "no such calendar of yours") from None
        return _back(request, "Calendar removed.")

    return web
