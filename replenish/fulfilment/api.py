"""The fulfilment REST API (SPEC 5): API keys stored hashed, each system sees only its own orders, events are idempotent."""

# No `from __future__ import annotations` in route modules: FastAPI resolves each route's annotations
# at definition time, and a string one cannot see the closure's dependencies (an API-key check).

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from ..ordering import OrderQueries, OrderStatus
from ..storage import Fulfiller
from .events import EventRejected, FulfilmentEvents
from .fulfillers import Fulfillers
from .payload import order_document

__all__ = ["PREFIX", "fulfilment_router"]

PREFIX = "/api/fulfilment/v1"


def fulfilment_router(fulfillers: Fulfillers, queries: OrderQueries, events: FulfilmentEvents, now: Callable[[], datetime]) -> APIRouter:
    """The routes fulfilment systems call, behind their API key."""
    api = APIRouter(prefix=PREFIX)

    async def fulfiller(authorization: Annotated[str | None, Header()] = None) -> Fulfiller:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "an API key is required: Authorization: Bearer <key>")
        found = await run_in_threadpool(fulfillers.for_key, authorization[7:].strip())
        if found is None:
            raise HTTPException(401, "unknown API key")
        return found

    @api.get("/orders")
    async def list_orders(f: Annotated[Fulfiller, Depends(fulfiller)], status: str = OrderStatus.RELEASED.value) -> dict[str, Any]:
        """The caller's orders in some statuses (comma-separated; `released` by default), oldest first."""
        found = await run_in_threadpool(queries.for_fulfiller, f.id, status.split(","))
        return {"orders": [order_document(o, h) for o, h in found]}

    @api.post("/orders/{order_id}/events")
    async def post_event(order_id: str, request: Request, f: Annotated[Fulfiller, Depends(fulfiller)]) -> dict[str, Any]:
        """Report what became of one of the caller's orders."""
        try:
            event = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HTTPException(422, "the body must be a JSON object") from None
        if not isinstance(event, dict):
            raise HTTPException(422, "the body must be a JSON object")
        try:
            order, changed = await run_in_threadpool(events.apply, f.id, order_id, event, now())
        except EventRejected as exc:
            raise HTTPException(exc.status, str(exc)) from None
        household = await run_in_threadpool(queries.household, order.household_id)
        return {"order": order_document(order, household), "applied": changed}

    return api
