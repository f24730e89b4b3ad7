"""An order as fulfilment systems see it, in one shape: in the signed webhook and in the REST API (SPEC 5)."""

from __future__ import annotations

from typing import Any

from ..money import to_major
from ..storage import Household, Order

__all__ = ["RELEASED", "order_document", "released_webhook"]

RELEASED = "order.released"  # the webhook's event type


def order_document(order: Order, household: Household | None) -> dict[str, Any]:
    """The order: ids, the household's pseudonym and address, items, device and slot, why, and where it stands."""
    return {
        "id": order.id,
        "idempotency_key": order.idempotency_key,
        "status": order.status,
        "household_ref": household.pseudonym if household else None,
        "shipping_address": household.address if household else None,
        "items": [{"sku": order.sku, "quantity": order.quantity, "unit_price": float(to_major(order.unit_price_cents, order.currency)), "currency": order.currency}],
        "device_id": order.device_id,
        "slot_id": order.slot_id,
        "reason": order.reason.get("summary"),
        "forecast": order.reason.get("forecast"),
        "created_at": order.created_at.isoformat(),
        "release_at": order.release_at.isoformat() if order.release_at else None,
        "released_at": order.released_at.isoformat() if order.released_at else None,
        "expected_delivery": order.expected_delivery.isoformat() if order.expected_delivery else None,
        "tracking": order.tracking,
    }


def released_webhook(order: Order, household: Household) -> dict[str, Any]:
    """The body of the webhook that hands an order to its fulfilment system."""
    return {"type": RELEASED, "order": order_document(order, household)}
