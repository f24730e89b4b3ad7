"""Domain events, and the one place each is handled: the message bus (Cosmic Python's, in its smallest form).

Whatever changes a consent or an order commits first, then publishes what happened; the handlers
that follow from it (a device told where its orders stand, waiting orders cancelled when
`auto_order` goes) are subscribed once, in the composition root (`replenish.bootstrap`). A new
rule is one more handler, not a call added wherever the change can happen.

A handler runs after the change it reacts to has committed, so its failure cannot undo it: it is
logged, and the other handlers still run. Nothing rests on a handler alone where money or data is
at stake: release and approval check `auto_order` consent themselves, and the gateway's own
consent flag (whether readings are stored) is written by the consent change, not by a handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

__all__ = ["ConsentChanged", "Event", "MessageBus", "OrderChanged"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsentChanged:
    """A household granted or withdrew one consent scope of one of its devices."""

    household_id: int
    device_id: str
    scope: str  # households.ConsentScope's value
    granted: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """An order was placed or moved to another status (by the household, the service or the shop)."""

    order_id: str
    device_id: str
    slot_id: str
    status: str  # ordering.OrderStatus's value, the new one
    ended_by: str | None  # ordering.EndedBy's value, for an order that ended unmet
    at: datetime


Event = ConsentChanged | OrderChanged
E = TypeVar("E", ConsentChanged, OrderChanged)


class MessageBus:
    """Hands each published event to the handlers of its type, in the order they were subscribed."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Callable[[Any], object]]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[E], object]) -> None:
        """Call `handler` with every event of this type from now on."""
        self._handlers.setdefault(kind, []).append(handler)

    def publish(self, *events: Event) -> None:
        """Handle each event; a failing handler is logged and the rest go on (the change itself has committed)."""
        for event in events:
            for handler in self._handlers.get(type(event), ()):
                try:
                    handler(event)
                except Exception:  # noqa: BLE001 - one handler's failure must not stop the others
                    log.exception("handling %s with %s failed", type(event).__name__, getattr(handler, "__qualname__", handler))
