"""Fulfilment events (SPEC 5): `accepted`, `shipped` with ETA and tracking, `delivered`, `cancelled`, `out_of_stock`.

Idempotent by event id, and safe when events arrive out of order: the status machine
(`ordering.status.after_event`) only moves an order forward. The device is told of each change.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from gateway import parse_rfc3339

from ..ordering import FulfilmentEvent, NotifyDevice, OrderStatus, after_event, takes_events
from ..storage import Order, OrderEvent

__all__ = ["EventRejected", "FulfilmentEvents"]

log = logging.getLogger(__name__)

_MAX_ID = 128


class EventRejected(ValueError):
    """A fulfilment event that cannot apply; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventRejected(422, f"{name} must be an RFC 3339 string")
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise EventRejected(422, f"{name} {exc}") from None


class FulfilmentEvents:
    """Applies what fulfilment systems report to their own orders."""

    def __init__(self, engine: Engine, notify: NotifyDevice) -> None:
        self.engine = engine
        self.notify = notify

    def apply(self, fulfiller_id: str, order_id: str, event: dict[str, Any], now: datetime) -> tuple[Order, bool]:
        """Apply one event; returns the order and whether anything changed."""
        try:
            etype = FulfilmentEvent(event.get("type"))
        except ValueError:
            raise EventRejected(422, f"type must be one of {', '.join(FulfilmentEvent)}") from None
        event_id = event.get("event_id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= _MAX_ID:
            raise EventRejected(422, f"event_id must be a string of 1-{_MAX_ID} characters")
        at = _parse_time(event.get("at"), "at") or now
        eta = _parse_time(event.get("eta"), "eta")
        tracking = event.get("tracking")
        if tracking is not None and (not isinstance(tracking, str) or len(tracking) > _MAX_ID):
            raise EventRejected(422, f"tracking must be a string of at most {_MAX_ID} characters")
        with Session(self.engine) as s:
            order = s.get(Order, order_id)
            if order is None or order.fulfiller_id != fulfiller_id:
                raise EventRejected(404, "no such order for this fulfilment system")
            if not takes_events(OrderStatus(order.status)):
                raise EventRejected(409, "the order has not been released yet")
            seen = s.exec(select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.event_id == event_id)).first()
            if seen is not None:
                return order, False
            s.add(OrderEvent(order_id=order_id, event_id=event_id, type=etype.value, at=at, received_at=now, payload=event))
            changed = eta is not None or bool(tracking)
            if eta is not None:
                order.expected_delivery = eta
            if tracking:
                order.tracking = tracking
            status = after_event(OrderStatus(order.status), etype)
            if status is not None:
                log.info("order %s for %s/%s: %s -> %s (%s from %s)", order.id, order.device_id, order.slot_id, order.status, status.value, etype.value, fulfiller_id)
                order.status = status.value
                changed = True
            if changed:
                order.updated_at = now
                s.add(order)
            try:
                s.commit()
            except IntegrityError:  # the same event raced in on another worker
                s.rollback()
                return order, False
            s.refresh(order)
        if changed:
            self.notify(order.device_id, now)
        return order, changed
