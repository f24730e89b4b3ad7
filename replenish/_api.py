"""HTTP: health, metrics and the fulfilment REST API (API keys, own orders only, idempotent events)."""


import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, model_validator

from ._catalog import Catalog
from ._models import Fulfiller, Order
from ._orders import EventRejected, Orders
from ._provisioning import Provisioner, numbered_ids

__all__ = ["create_app"]


def _order_json(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "idempotency_key": o.idempotency_key,
        "status": o.status,
        "device_id": o.device_id,
        "slot_id": o.slot_id,
        "items": [{"sku": o.sku, "quantity": o.quantity, "unit_price": o.unit_price_cents / 100, "currency": o.currency}],
        "reason": o.reason.get("summary"),
        "created_at": o.created_at.isoformat(),
        "release_at": o.release_at.isoformat() if o.release_at else None,
        "released_at": o.released_at.isoformat() if o.released_at else None,
        "expected_delivery": o.expected_delivery.isoformat() if o.expected_delivery else None,
        "tracking": o.tracking,
    }


class ProvisionRequest(BaseModel):
    """Devices to provision: explicit ids, or `count` numbered ids after `prefix`."""

    device_ids: list[str] = Field(default_factory=list, max_length=10_000)
    prefix: str = Field("", max_length=50)
    count: int = Field(0, ge=0, le=10_000)
    start: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one_way(self) -> "ProvisionRequest":
        if bool(self.device_ids) == bool(self.prefix and self.count):
            raise ValueError("give either device_ids, or prefix and count")
        return self

    def ids(self) -> list[str]:
        """The device ids asked for."""
        return self.device_ids or numbered_ids(self.prefix, self.count, self.start)


def create_app(catalog: Catalog, orders: Orders, clock_now: Any, provisioner: Provisioner | None = None, admin_token: str = "") -> FastAPI:
    """The service's HTTP application."""
    app = FastAPI(title="replenish", version="0.1.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def fulfiller(authorization: Annotated[str | None, Header()] = None) -> Fulfiller:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "an API key is required: Authorization: Bearer <key>")
        found = await run_in_threadpool(catalog.fulfiller_for_key, authorization[7:].strip())
        if found is None:
            raise HTTPException(401, "unknown API key")
        return found

    api = APIRouter(prefix="/api/fulfilment/v1")

    @api.get("/orders")
    async def list_orders(f: Annotated[Fulfiller, Depends(fulfiller)], status: str = "released") -> dict[str, Any]:
        found = await run_in_threadpool(orders.for_fulfiller, f.id, status.split(","))
        return {"orders": [_order_json(o) for o in found]}

    @api.post("/orders/{order_id}/events")
    async def post_event(order_id: str, request: Request, f: Annotated[Fulfiller, Depends(fulfiller)]) -> dict[str, Any]:
        try:
            event = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HTTPException(422, "the body must be a JSON object") from None
        if not isinstance(event, dict):
            raise HTTPException(422, "the body must be a JSON object")
        try:
            order, changed = await run_in_threadpool(orders.apply_event, f.id, order_id, event, clock_now())
        except EventRejected as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return {"order": _order_json(order), "applied": changed}

    app.include_router(api)

    async def operator(authorization: Annotated[str | None, Header()] = None) -> None:
        if not admin_token:
            raise HTTPException(404, "the operator API is off: set REPLENISH_ADMIN_TOKEN")
        given = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), admin_token.encode()):
            raise HTTPException(401, "the operator token is required: Authorization: Bearer <token>")

    admin = APIRouter(prefix="/api/admin/v1", dependencies=[Depends(operator)])

    @admin.post("/devices")
    async def provision(body: ProvisionRequest) -> dict[str, Any]:
        """Issue MQTT credentials and claim codes; the only time either is shown."""
        if provisioner is None:
            raise HTTPException(409, "no broker access configured: set REPLENISH_MQTT_ADMIN_URL for Mosquitto's dynamic security")
        try:
            issued = await run_in_threadpool(provisioner.provision, body.ids())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"devices": [{"device_id": p.device_id, "password": p.password, "claim_code": p.claim_code} for p in issued]}

    app.include_router(admin)
    return app
