"""The built-in fulfilment sink for the demo and tests: a stand-in retailer speaking the real wire format.

It verifies each webhook with the `standardwebhooks` package, keeps what it received, and reports
`accepted`, `shipped` (with ETA and tracking) and `delivered` back over the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gateway import Clock

__all__ = ["ReceivedWebhook", "Sink"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """A webhook as it arrived: raw body and headers, for anyone to verify again."""

    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class Sink:
    """A fulfilment system that ships after `ship_after` and delivers after `deliver_after` (clock time)."""

    secret: str
    api_base: str
    api_key: str
    clock: Clock
    ship_after: timedelta = timedelta(hours=12)
    deliver_after: timedelta = timedelta(days=2)
    received: list[ReceivedWebhook] = field(default_factory=list)
    _plan: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)

    def app(self) -> FastAPI:
        """The sink's HTTP endpoint."""

        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            task = asyncio.create_task(self._report_loop())
            yield
            task.cancel()

        app = FastAPI(title="replenish fulfilment sink", lifespan=lifespan)

        @app.post("/webhooks/orders")
        async def receive(request: Request) -> dict[str, str]:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                payload = Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError as exc:
                raise HTTPException(401, f"bad signature: {exc}") from None
            self.received.append(ReceivedWebhook(body, headers, payload))
            order_id = payload["order"]["id"]
            now = self.clock.now()
            eta = now + self.deliver_after
            self._plan += [
                (now, order_id, {"type": "accepted"}),
                (now + self.ship_after, order_id, {"type": "shipped", "eta": eta.isoformat(), "tracking": "SINK" + order_id[:8].upper()}),
                (eta, order_id, {"type": "delivered"}),
            ]
            return {"status": "accepted"}

        return app

    async def _report_loop(self) -> None:
        async with httpx.AsyncClient(base_url=self.api_base, headers={"authorization": f"Bearer {self.api_key}"}) as http:
            while True:
                now = self.clock.now()
                due = [p for p in self._plan if p[0] <= now]
                for item in due:
                    at, order_id, event = item
                    event = {**event, "event_id": f"{event['type']}-{order_id}", "at": at.isoformat()}
                    try:
                        r = await http.post(f"/api/fulfilment/v1/orders/{order_id}/events", content=json.dumps(event))
                        if r.status_code < 500:
                            self._plan.remove(item)
                        if not r.is_success:
                            log.warning("sink event %s for %s answered %s", event["type"], order_id, r.status_code)
                    except httpx.HTTPError:
                        log.warning("sink could not report %s for %s; will retry", event["type"], order_id)
                await asyncio.sleep(0.1)
