"""The order status machine: which statuses exist, which count for what, and how fulfilment events move an order; pure."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CANCELLABLE", "COMMITTED", "FINAL", "OPEN", "FulfilmentEvent", "OrderStatus", "after_event", "takes_events"]


class OrderStatus(StrEnum):
    """Where an order stands; stored as its value."""

    AWAITING_APPROVAL = "awaiting_approval"  # the household must approve it (approve mode, or over budget)
    HELD = "held"  # auto mode: placed, held for its cancel window
    RELEASED = "released"  # sent to the fulfilment system
    ACCEPTED = "accepted"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    OUT_OF_STOCK = "out_of_stock"


class FulfilmentEvent(StrEnum):
    """What a fulfilment system may report about an order (SPEC 5)."""

    ACCEPTED = "accepted"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    OUT_OF_STOCK = "out_of_stock"


S = OrderStatus
# An order still on its way: no second order is placed for its slot meanwhile.
OPEN: frozenset[OrderStatus] = frozenset((S.AWAITING_APPROVAL, S.HELD, S.RELEASED, S.ACCEPTED, S.SHIPPED))
# Money the household has committed this month: counts against its budget.
COMMITTED: frozenset[OrderStatus] = frozenset((S.HELD, S.RELEASED, S.ACCEPTED, S.SHIPPED, S.DELIVERED))
FINAL: frozenset[OrderStatus] = frozenset((S.DELIVERED, S.CANCELLED, S.OUT_OF_STOCK))
CANCELLABLE: frozenset[OrderStatus] = frozenset((S.HELD, S.AWAITING_APPROVAL))  # by the household, before release
# Fulfilment events only move an order forward; a late `shipped` after `delivered` changes nothing.
_RANK = {S.RELEASED: 2, S.ACCEPTED: 3, S.SHIPPED: 4, S.DELIVERED: 5}


def takes_events(status: OrderStatus) -> bool:
    """Whether a fulfilment system may report on an order: only once it has been released to it."""
    return status not in CANCELLABLE


def after_event(status: OrderStatus, event: FulfilmentEvent) -> OrderStatus | None:
    """The status an event moves a released order to, or None when it leaves the status as it is.

    Events are idempotent and may arrive out of order: progress only moves forward, a final status
    stays final, and `cancelled` or `out_of_stock` end an order that has not ended yet.
    """
    if status in FINAL:
        return None
    target = OrderStatus(event.value)
    if target in _RANK:
        return target if _RANK[target] > _RANK.get(status, 0) else None
    return target
