"""The household pages: login, devices with levels and forecasts, claims, consent, orders with cancel and approve."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway import Clock, GatewayStorage, OverBudget

from ..households import Consents, ConsentScope, Households
from ..ordering import OrderActions, OrderQueries
from .auth import check_csrf, csrf_token, household_id, require_household

__all__ = ["Pages", "pages_router"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True, slots=True)
class Pages:
    """What the household pages read and change."""

    households: Households
    consents: Consents
    gateway: GatewayStorage
    queries: OrderQueries
    actions: OrderActions
    clock: Clock

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
        return {
            "household": self.households.get(household),
            "device_ids": device_ids,
            "device_map": devices,
            "consents": self.consents.in_force(device_ids),
            "over_budget": over_budget,
            "slots": rows,
            "orders": self.queries.for_household(household),
        }


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
            await run_in_threadpool(do, household, order_id, pages.clock.now())
        except LookupError:
            raise HTTPException(404, "no such order") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse("/", 303)

    return web
