"""The household web page: login, devices with levels and forecasts, orders with cancel and approve."""

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from gateway import Clock, GatewayStore

from ._households import Households
from ._orders import Orders

__all__ = ["add_web"]

_templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def _check_csrf(request: Request, token: str) -> None:
    if not secrets.compare_digest(token, str(request.session.get("csrf", ""))):
        raise HTTPException(403, "the form is stale or forged (CSRF token mismatch); reload the page")


def _household_id(request: Request) -> int | None:
    value = request.session.get("household_id")
    return int(value) if value is not None else None


def _overview(households: Households, store: GatewayStore, orders: Orders, household_id: int) -> dict[str, Any]:
    device_ids = households.device_ids(household_id)
    devices = {d.device_id: d for d in store.devices(device_ids)}
    forecasts = store.forecasts(device_ids)
    consents = households.consents(device_ids)
    rows = []
    for slot in store.slots(device_ids):
        fc = forecasts.get((slot.device_id, slot.slot_id))
        rows.append({"slot": slot, "forecast": fc, "device": devices.get(slot.device_id)})
    return {
        "household": households.get(household_id),
        "device_ids": device_ids,
        "device_map": devices,
        "consents": consents,
        "slots": rows,
        "orders": orders.for_household(household_id),
    }


def add_web(app: FastAPI, secret_key: str, households: Households, store: GatewayStore, orders: Orders, clock: Clock) -> None:
    """Mount the household pages on the service's app."""
    app.add_middleware(SessionMiddleware, secret_key=secret_key, same_site="lax", https_only=False, max_age=14 * 86400)
    web = APIRouter()

    @web.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        household_id = _household_id(request)
        if household_id is None:
            return RedirectResponse("/login", 303)
        data = await run_in_threadpool(_overview, households, store, orders, household_id)
        flash = request.session.pop("flash", None)
        return _templates.TemplateResponse(request, "home.html", {**data, "csrf": _csrf(request), "now": clock.now(), "flash": flash})

    @web.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return _templates.TemplateResponse(request, "login.html", {"csrf": _csrf(request), "error": None})

    @web.post("/login")
    async def login(request: Request, email: str = Form(...), password: str = Form(...), csrf: str = Form(...)) -> Response:
        _check_csrf(request, csrf)
        household = await run_in_threadpool(households.authenticate, email, password)
        if household is None:
            return _templates.TemplateResponse(request, "login.html", {"csrf": _csrf(request), "error": "Wrong email or password."}, status_code=401)
        request.session.clear()
        request.session["household_id"] = household.id
        return RedirectResponse("/", 303)

    @web.post("/logout")
    async def logout(request: Request, csrf: str = Form(...)) -> Response:
        _check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", 303)

    @web.post("/devices/claim")
    async def claim(request: Request, device_id: str = Form(...), claim_code: str = Form(...), csrf: str = Form(...)) -> Response:
        """Claim a device with the code printed on it (SPEC 4)."""
        _check_csrf(request, csrf)
        household_id = _household_id(request)
        if household_id is None:
            raise HTTPException(401, "log in first")
        device_id = device_id.strip()
        try:
            await run_in_threadpool(households.claim, household_id, device_id, claim_code)
        except PermissionError as exc:
            request.session["flash"] = f"Could not claim {device_id[:64]}: {exc}."
            return RedirectResponse("/", 303)
        request.session["flash"] = f"{device_id} is yours. Give consent to store its levels before anything is forecast."
        return RedirectResponse("/", 303)

    @web.post("/devices/{device_id}/consent/{scope}")
    async def consent(request: Request, device_id: str, scope: str, granted: str = Form(...), csrf: str = Form(...)) -> Response:
        """Grant or withdraw one consent scope of a device; recorded with the wording version."""
        _check_csrf(request, csrf)
        household_id = _household_id(request)
        if household_id is None:
            raise HTTPException(401, "log in first")
        if scope not in ("telemetry", "auto_order") or granted not in ("yes", "no"):
            raise HTTPException(422, "scope is telemetry or auto_order, granted is yes or no")
        household = await run_in_threadpool(households.get, household_id)
        try:
            await run_in_threadpool(households.set_consent, household_id, device_id, scope, granted == "yes", household.email if household else "web")
        except PermissionError:
            raise HTTPException(404, "no such device of yours") from None
        return RedirectResponse("/", 303)

    @web.post("/orders/{order_id}/{action}")
    async def order_action(request: Request, order_id: str, action: str, csrf: str = Form(...)) -> Response:
        _check_csrf(request, csrf)
        household_id = _household_id(request)
        if household_id is None:
            raise HTTPException(401, "log in first")
        if action not in ("cancel", "approve"):
            raise HTTPException(404, "unknown action")
        do = orders.cancel if action == "cancel" else orders.approve
        try:
            await run_in_threadpool(do, household_id, order_id, clock.now())
        except LookupError:
            raise HTTPException(404, "no such order") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse("/", 303)

    app.include_router(web)
