"""The household pages: login, devices with levels and forecasts, claims, consent, orders with cancel and approve."""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway import Clock, GatewayStorage, OverBudget

from ..money import to_major, to_minor
from ..households import CONSENT_WORDING, Consents, ConsentScope, Households
from ..ordering import NotNow, OrderActions, OrderPlacer, OrderQueries
from .auth import check_csrf, csrf_token, household_id, require_household

__all__ = ["Pages", "pages_router"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# {{ cents|money(currency) }}: an amount of minor units as its currency writes it (24.99 EUR, 2499 JPY).
TEMPLATES.env.filters["money"] = lambda minor, currency: f"{to_major(minor, currency):f}"
MAX_NOT_NOW = timedelta(days=90)  # a longer "not now" is a "never": the slot's notify mode


@dataclass(frozen=True, slots=True)
class Pages:
    """What the household pages read and change."""

    households: Households
    consents: Consents
    gateway: GatewayStorage
    queries: OrderQueries
    actions: OrderActions
    clock: Clock
    placer: OrderPlacer | None = None  # "order now"; without it the page offers none

    def overview(self, household: int) -> dict[str, Any]:
        """Everything the home page shows a household: devices, consent, levels, forecasts, orders."""
        device_ids = self.households.device_ids(household)
        devices = {d.device_id: d for d in self.gateway.registry.devices(device_ids)}
        forecasts = self.gateway.forecasts.views(device_ids)
        # Devices whose extra messages the gateway has dropped for ten minutes or more of the last hour (docs/protocol.md, "rate").
        over_budget: dict[str, OverBudget] = self.gateway.dead_letters.over_budget(device_ids, self.clock.now())
        rows = [
            {"slot": slot, "forecast": forecasts.get((slot.device_id, slot.slot_id)), "device": devices.get(slot.device_id)}
            for slot in self.gateway.registry.slots(device_ids)
        ]
        account = self.households.get(household)
        return {
            "household": account,
            "budget_text": f"{to_major(account.monthly_budget_cents, account.currency):f}" if account else "",
            "device_ids": device_ids,
            "device_map": devices,
            "consents": self.consents.in_force(device_ids),
            "over_budget": over_budget,
            "slots": rows,
            "orders": self.queries.for_household(household),
            "not_now": {k: v for k, v in self.queries.not_now(household).items() if v.until > self.clock.now()},
            "chosen": self.queries.chosen_slots(household) if self.placer is not None else set(),
            "default_cancel_window_hours": self.placer.cancel_window.total_seconds() / 3600 if self.placer is not None else 24.0,
            "wording": CONSENT_WORDING,
        }


def _placer(pages: Pages) -> OrderPlacer:
    """The placer behind "order now", or 404 where this app does not order."""
    if pages.placer is None:
        raise HTTPException(404, "ordering is not served here")
    return pages.placer


def pages_router(pages: Pages) -> APIRouter:
    """The household's routes."""
    web = APIRouter()

    @web.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        household = household_id(request)
        if household is None:
            return RedirectResponse("/login", 303)
        data = await run_in_threadpool(pages.overview, household)
        flash = request.session.pop("flash", None)
        return TEMPLATES.TemplateResponse(request, "home.html", {**data, "csrf": csrf_token(request), "now": pages.clock.now(), "flash": flash})

    @web.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(request, "login.html", {"csrf": csrf_token(request), "error": None})

    @web.post("/login")
    async def login(request: Request, email: str = Form(...), password: str = Form(...), csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        household = await run_in_threadpool(pages.households.authenticate, email, password)
        if household is None:
            return TEMPLATES.TemplateResponse(request, "login.html", {"csrf": csrf_token(request), "error": "Wrong email or password."}, status_code=401)
        request.session.clear()
        request.session["household_id"] = household.id
        return RedirectResponse("/", 303)

    @web.post("/logout")
    async def logout(request: Request, csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", 303)

    @web.post("/devices/claim")
    async def claim(request: Request, device_id: str = Form(...), claim_code: str = Form(...), csrf: str = Form(...)) -> Response:
        """Claim a device with the code printed on it (SPEC 4)."""
        check_csrf(request, csrf)
        household = require_household(request)
        device_id = device_id.strip()
        try:
            await run_in_threadpool(pages.households.claim, household, device_id, claim_code)
        except PermissionError as exc:
            request.session["flash"] = f"Could not claim {device_id[:64]}: {exc}."
            return RedirectResponse("/", 303)
        request.session["flash"] = f"{device_id} is yours. Give consent to store its levels before anything is forecast."
        return RedirectResponse("/", 303)

    @web.post("/devices/{device_id}/consent/{scope}")
    async def consent(request: Request, device_id: str, scope: str, granted: str = Form(...), csrf: str = Form(...)) -> Response:
        """Grant or withdraw one consent scope of a device; recorded with the wording version."""
        check_csrf(request, csrf)
        household = require_household(request)
        if scope not in tuple(ConsentScope) or granted not in ("yes", "no"):
            raise HTTPException(422, "scope is telemetry or auto_order, granted is yes or no")
        account = await run_in_threadpool(pages.households.get, household)
        try:
            await run_in_threadpool(pages.consents.set, household, device_id, ConsentScope(scope), granted == "yes", account.email if account else "web")
        except PermissionError:
            raise HTTPException(404, "no such device of yours") from None
        return RedirectResponse("/", 303)

    @web.post("/orders/{order_id}/{action}")
    async def order_action(request: Request, order_id: str, action: str, csrf: str = Form(...)) -> Response:
        check_csrf(request, csrf)
        household = require_household(request)
        if action not in ("cancel", "approve"):
            raise HTTPException(404, "unknown action")
        do = pages.actions.cancel if action == "cancel" else pages.actions.approve
        try:
            order = await run_in_threadpool(do, household, order_id, pages.clock.now())
        except LookupError:
            raise HTTPException(404, "no such order") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        if action == "cancel":
            not_now = (await run_in_threadpool(pages.queries.not_now, household)).get((order.device_id, order.slot_id))
            if not_now is not None:
                floor = f", unless its level falls to {not_now.below * 100:.0f} %" if not_now.below is not None else ""
                request.session["flash"] = (
                    f"Cancelled. Not now: nothing is ordered for {order.device_id} / {order.slot_id} before "
                    f"{not_now.until:%b %d %H:%M} UTC{floor}. You can change that under Levels."
                )
        return RedirectResponse("/", 303)

    @web.get("/slots/{device_id}/{slot_id}/order-now", response_class=HTMLResponse)
    async def order_now_form(request: Request, device_id: str, slot_id: str) -> Response:
        """What "order now" would order, and at what price, before anything is ordered."""
        household = require_household(request)
        try:
            quote = await run_in_threadpool(_placer(pages).quote, household, device_id, slot_id, pages.clock.now())
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        name = await run_in_threadpool(pages.queries.product_name, quote.offer.sku) if quote.offer else None
        return TEMPLATES.TemplateResponse(request, "order_now.html", {"quote": quote, "product_name": name or "", "csrf": csrf_token(request)})

    @web.post("/slots/{device_id}/{slot_id}/order-now")
    async def order_now(request: Request, device_id: str, slot_id: str, csrf: str = Form(...)) -> Response:
        """Order the slot's product now (one order in flight per slot, the budget respected)."""
        check_csrf(request, csrf)
        household = require_household(request)
        try:
            order = await run_in_threadpool(_placer(pages).order_now, household, device_id, slot_id, pages.clock.now())
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        waits = order.status == "awaiting_approval"
        request.session["flash"] = f"Ordered {order.quantity} × {order.sku} for {device_id} / {slot_id}" + (": it waits for your approval, as it goes over the budget." if waits else ".")
        return RedirectResponse("/", 303)

    @web.post("/settings")
    async def settings(request: Request, budget: str = Form(...), cancel_window_hours: str = Form(""), csrf: str = Form(...)) -> Response:
        """The household's monthly budget (in its currency) and how long its `auto` orders are held (empty: the service's default)."""
        check_csrf(request, csrf)
        household = require_household(request)
        current = await run_in_threadpool(pages.households.get, household)
        assert current is not None
        try:
            amount = Decimal(budget.strip())
        except InvalidOperation:
            raise HTTPException(422, "the budget is an amount such as 50.00") from None
        try:
            hours = float(cancel_window_hours) if cancel_window_hours.strip() else None
        except ValueError:
            hours = math.nan
        if hours is not None and not math.isfinite(hours):
            raise HTTPException(422, "the cancel window is a number of hours, or empty for the service's default")
        try:
            await run_in_threadpool(pages.households.update_settings, household, to_minor(amount, current.currency), hours)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        request.session["flash"] = "Settings saved."
        return RedirectResponse("/", 303)

    @web.post("/slots/{device_id}/{slot_id}/not-now")
    async def not_now(request: Request, device_id: str, slot_id: str, until: str = Form(""), csrf: str = Form(...)) -> Response:
        """Move a slot's "not now" to another day (its level floor kept), or end it (`until` empty)."""
        check_csrf(request, csrf)
        household = require_household(request)
        now = pages.clock.now()
        held = (await run_in_threadpool(pages.queries.not_now, household)).get((device_id, slot_id))
        if until.strip():
            try:
                day = date.fromisoformat(until.strip())
            except ValueError:
                raise HTTPException(422, "until is a date, YYYY-MM-DD") from None
            end = datetime.combine(day, time(), UTC)
            if not now < end <= now + MAX_NOT_NOW:
                raise HTTPException(422, f"until is a day after today and at most {MAX_NOT_NOW.days} days ahead")
            change = NotNow(end, held.below if held else None)
        else:
            change = None
        try:
            await run_in_threadpool(pages.actions.set_not_now, household, device_id, slot_id, change)
        except LookupError:
            raise HTTPException(404, "no such slot of yours") from None
        request.session["flash"] = f"{device_id} / {slot_id}: " + (f"not ordered before {change.until:%b %d} UTC." if change else "planned again from now.")
        return RedirectResponse("/", 303)

    return web
