"""Fulfilment events (SPEC 5): `accepted`, `shipped` with ETA and tracking, `delivered`, `cancelled`, `out_of_stock`.

Idempotent by event id, and safe when events arrive out of order: the status machine
(`ordering.status.after_event`) only moves an order forward. The device is told of each change.
A system reports only on its own orders once released to it. Every field is checked before it
reaches the database: a malformed one is an `EventRejected` with its reason, never a server
error (PostgreSQL refuses NUL in text; a lone surrogate cannot be encoded at all).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from gateway import parse_rfc3339

from ..events import MessageBus
from ..ordering import EndedBy, FulfilmentEvent, OrderStatus, after_event, changed, takes_events
from ..storage import Order, OrderEvent

__all__ = ["EVENT_SCHEMA", "MAX_ORDER_ID", "ORDER_ID_PATTERN", "Event", "EventRejected", "FulfilmentEvents", "parse_event"]

log = logging.getLogger(__name__)

_MAX_ID = 128  # the width of order_events.event_id and orders.tracking
_MAX_TIME = 64  # far longer than any RFC 3339 timestamp
_MAX_DEPTH = 8  # an event is flat; a system's own extra fields may nest a little
MAX_ORDER_ID = 36  # the width of orders.id (a UUID)
ORDER_ID_PATTERN = r"^[A-Za-z0-9._~-]+$"  # URL-unreserved characters: every id we issue, nothing to escape
_ORDER_ID = re.compile(ORDER_ID_PATTERN)
_NOT_FOUND = "no such order for this fulfilment system"
_LINE_BREAKS = frozenset("\t\n\r")  # free text in a system's own fields may keep these
_TYPES = frozenset(e.value for e in FulfilmentEvent)

# The body's JSON Schema, for the OpenAPI document; `parse_event` is what enforces it (and more:
# printable means no control, format, private-use or unassigned characters, which a pattern cannot say simply).
_NO_CONTROLS = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
EVENT_SCHEMA: dict[str, Any] = {
    "title": "FulfilmentEventBody",
    "type": "object",
    "required": ["type", "event_id"],
    "properties": {
        "type": {"type": "string", "enum": [e.value for e in FulfilmentEvent]},
        "event_id": {"type": "string", "minLength": 1, "maxLength": _MAX_ID, "pattern": _NO_CONTROLS, "description": "the system's id for this event, printable text: a repeat is applied once"},
        "at": {"type": "string", "format": "date-time", "maxLength": _MAX_TIME, "description": "RFC 3339 with a UTC offset; default: when received"},
        "eta": {"type": "string", "format": "date-time", "maxLength": _MAX_TIME, "description": "expected delivery, RFC 3339"},
        "tracking": {"type": "string", "maxLength": _MAX_ID, "pattern": _NO_CONTROLS, "description": "the carrier's tracking reference, printable text"},
    },
    "additionalProperties": True,
}


class EventRejected(ValueError):
    """A fulfilment event that cannot apply; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True, slots=True)
class Event:
    """A fulfilment event whose fields have been checked."""

    type: FulfilmentEvent
    event_id: str
    at: datetime | None
    eta: datetime | None
    tracking: str | None


def _first_unprintable(text: str) -> str | None:
    return next((f"U+{ord(c):04X} at {i}" for i, c in enumerate(text) if not c.isprintable()), None)


def _printable(value: Any, name: str, min_len: int) -> str:
    if not isinstance(value, str) or not min_len <= len(value) <= _MAX_ID:
        raise EventRejected(422, f"{name} must be a string of {min_len}-{_MAX_ID} printable characters")
    if bad := _first_unprintable(value):
        raise EventRejected(422, f"{name} must be printable text: {bad} is not")
    return value


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TIME:
        raise EventRejected(422, f"{name} must be an RFC 3339 string of at most {_MAX_TIME} characters")
    try:
        return parse_rfc3339(value)  # its reason shows the value through repr: escaped, ASCII-safe
    except ValueError as exc:
        raise EventRejected(422, f"{name} {exc}") from None


def _name(key: str) -> str:
    """A field's name to show in a reason: only printable ones (a lone surrogate cannot even be encoded in the answer)."""
    return key[:40] if _first_unprintable(key) is None else "a field"


def _clean(value: Any, where: str, depth: int = 0) -> None:
    """A system's own fields are kept as received: only JSON the database stores as it is (no control characters, finite numbers)."""
    if depth > _MAX_DEPTH:
        raise EventRejected(422, f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, str):
        bad = next((c for c in value if c not in _LINE_BREAKS and unicodedata.category(c) in ("Cc", "Cs")), None)
        if bad is not None:
            raise EventRejected(422, f"{where} must not contain the control character U+{ord(bad):04X}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise EventRejected(422, f"{where} must be a finite number")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _clean(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _clean(key, f"a key in {where}", depth + 1)
            _clean(item, f"{where}.{_name(key)}", depth + 1)


def parse_event(body: Any) -> Event:
    """The event a request body describes; EventRejected(422) names the first field that is wrong and why."""
    if not isinstance(body, dict):
        raise EventRejected(422, "the body must be a JSON object")
    etype = body.get("type")
    if not isinstance(etype, str) or etype not in _TYPES:
        raise EventRejected(422, f"type must be one of {', '.join(FulfilmentEvent)}")
    event = Event(
        type=FulfilmentEvent(etype),
        event_id=_printable(body.get("event_id"), "event_id", 1),
        at=_time(body.get("at"), "at"),
        eta=_time(body.get("eta"), "eta"),
        tracking=None if body.get("tracking") is None else _printable(body["tracking"], "tracking", 0),
    )
    for key, value in body.items():
        _clean(key, "a key of the body")
        _clean(value, _name(key), 1)
    return event


def _check_order_id(order_id: str) -> None:
    """An order id as issued (a UUID) or EventRejected(422): nothing else is looked up."""
    if not 0 < len(order_id) <= MAX_ORDER_ID or not _ORDER_ID.fullmatch(order_id):
        raise EventRejected(422, f"the order id must be 1-{MAX_ORDER_ID} letters, digits or '._~-'")


class FulfilmentEvents:
    """Applies what fulfilment systems report to their own orders."""

    def __init__(self, engine: Engine, bus: MessageBus) -> None:
        self.engine = engine
        self.bus = bus

    def apply(self, fulfiller_id: str, order_id: str, body: Any, now: datetime) -> tuple[Order, bool]:
        """Apply one event (a decoded JSON body); returns the order and whether anything changed."""
        _check_order_id(order_id)
        event = parse_event(body)
        at = event.at or now
        with Session(self.engine) as s:
            order = s.get(Order, order_id)
            # Never released to it (held, awaiting approval, or cancelled by the household before release): not its order yet.
            if order is None or order.fulfiller_id != fulfiller_id or order.released_at is None or not takes_events(OrderStatus(order.status)):
                raise EventRejected(404, _NOT_FOUND)
            seen = s.exec(select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.event_id == event.event_id)).first()
            if seen is not None:
                return order, False
            s.add(OrderEvent(order_id=order_id, event_id=event.event_id, type=event.type.value, at=at, received_at=now, payload=body))
            moved = event.eta is not None or bool(event.tracking)
            if event.eta is not None:
                order.expected_delivery = event.eta
            if event.tracking:
                order.tracking = event.tracking
            status = after_event(OrderStatus(order.status), event.type)
            if status is not None:
                log.info("order %s for %s/%s: %s -> %s (%s from %s)", order.id, order.device_id, order.slot_id, order.status, status.value, event.type.value, fulfiller_id)
                order.status = status.value
                if status in (OrderStatus.CANCELLED, OrderStatus.OUT_OF_STOCK):
                    order.ended_by = EndedBy.FULFILMENT  # the need is ordered again, from the next substitute
                moved = True
            if moved:
                order.updated_at = now
                s.add(order)
            try:
                s.commit()
            except IntegrityError:  # the same event raced in on another worker
                s.rollback()
                return order, False
            s.refresh(order)
        if moved:
            self.bus.publish(changed(order, now))
        return order, moved
