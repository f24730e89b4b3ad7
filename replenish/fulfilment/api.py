"""The fulfilment REST API (SPEC 5): API keys stored hashed, each system sees only its own released orders, events are idempotent.

Malformed input answers 4xx with its reason in `detail`, never 5xx: the body's size and JSON are
checked here, its fields in `events.parse_event`, the order id in `FulfilmentEvents.apply`.
"""

# No `from __future__ import annotations` in route modules: FastAPI resolves each route's annotations
# at definition time, and a string one cannot see the closure's dependencies (an API-key check).

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..ordering import OrderQueries, OrderStatus, takes_events
from ..storage import Fulfiller
from .events import EVENT_SCHEMA, MAX_ORDER_ID, ORDER_ID_PATTERN, EventRejected, FulfilmentEvents
from .fulfillers import Fulfillers
from .payload import order_document

__all__ = ["MAX_BODY", "PREFIX", "VISIBLE", "fulfilment_router"]

PREFIX = "/api/fulfilment/v1"
MAX_BODY = 64 * 1024  # an event is a few hundred bytes; anything near this is not one
# What a fulfilment system can see: an order released to it, and every status it reaches from there.
VISIBLE: tuple[OrderStatus, ...] = tuple(s for s in OrderStatus if takes_events(s))
_NEVER_VISIBLE = tuple(s.value for s in OrderStatus if not takes_events(s))
_STATUS_LIST = "(" + "|".join(VISIBLE) + ")"
_BODY_NOT_OBJECT = "the body must be a JSON object"

_bearer = HTTPBearer(auto_error=False, scheme_name="FulfilmentApiKey", description="the API key issued when the fulfilment system was registered")


def _statuses(query: str) -> list[OrderStatus]:
    """The `status` query: comma-separated visible statuses; 422 names the first that is not one."""
    wanted = []
    for item in query.split(","):
        name = item.strip()
        if name in _NEVER_VISIBLE:
            raise HTTPException(422, f"{name} orders are not released to fulfilment systems; status may be any of {', '.join(VISIBLE)}")
        if name not in VISIBLE:
            raise HTTPException(422, f"unknown order status {name[:40]!r}; status may be any of {', '.join(VISIBLE)}")
        wanted.append(OrderStatus(name))
    return wanted


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


async def _json_body(request: Request) -> Any:
    """The body as JSON, read up to MAX_BODY: 413 past it, 422 when it is not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:  # "²".isdigit(), but int("²") fails
        raise HTTPException(413, f"the body must be at most {MAX_BODY // 1024} KiB")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise HTTPException(413, f"the body must be at most {MAX_BODY // 1024} KiB")
    try:
        return json.loads(bytes(raw), parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, an integer of thousands of digits
        reason = str(exc) if "JSON number" in str(exc) else "it is not JSON"
        raise HTTPException(422, f"{_BODY_NOT_OBJECT}: {reason}") from None
    except RecursionError:
        raise HTTPException(422, f"{_BODY_NOT_OBJECT}: it is nested too deep") from None


def fulfilment_router(fulfillers: Fulfillers, queries: OrderQueries, events: FulfilmentEvents, now: Callable[[], datetime]) -> APIRouter:
    """The routes fulfilment systems call, behind their API key."""
    api = APIRouter(prefix=PREFIX, responses={401: {"description": "no API key, or an unknown one"}})

    async def fulfiller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Fulfiller:
        if credentials is None:
            raise HTTPException(401, "an API key is required: Authorization: Bearer <key>", headers={"WWW-Authenticate": "Bearer"})
        found = await run_in_threadpool(fulfillers.for_key, credentials.credentials.strip())
        if found is None:
            raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        return found

    @api.get("/orders", responses={422: {"description": "a status that is unknown or never visible"}})
    async def list_orders(
        f: Annotated[Fulfiller, Depends(fulfiller)],
        status: Annotated[
            str,
            Query(
                description=f"comma-separated, any of {', '.join(VISIBLE)}; orders never released (held, awaiting approval) are never visible",
                json_schema_extra={"pattern": f"^{_STATUS_LIST}(,{_STATUS_LIST})*$"},
            ),
        ] = OrderStatus.RELEASED.value,
    ) -> dict[str, Any]:
        """The caller's orders released to it, in some statuses (`released` by default), oldest release first."""
        found = await run_in_threadpool(queries.for_fulfiller, f.id, _statuses(status))
        return {"orders": [order_document(o, h) for o, h in found]}

    @api.post(
        "/orders/{order_id}/events",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": EVENT_SCHEMA}}}},
        responses={
            404: {"description": "not one of the caller's orders released to it"},
            413: {"description": f"a body over {MAX_BODY // 1024} KiB"},
            422: {"description": "a malformed body, field or order id; `detail` says which and why"},
        },
    )
    async def post_event(
        order_id: Annotated[str, Path(description="the order's id", json_schema_extra={"pattern": ORDER_ID_PATTERN, "maxLength": MAX_ORDER_ID})],
        request: Request,
        f: Annotated[Fulfiller, Depends(fulfiller)],
    ) -> dict[str, Any]:
        """Report what became of one of the caller's orders."""
        body = await _json_body(request)
        try:
            order, changed = await run_in_threadpool(events.apply, f.id, order_id, body, now())
        except EventRejected as exc:
            raise HTTPException(exc.status, str(exc)) from None
        household = await run_in_threadpool(queries.household, order.household_id)
        return {"order": order_document(order, household), "applied": changed}

    return api
