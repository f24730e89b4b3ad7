"""Telling devices where their orders stand: the latest order of each slot, on the retained `orders` topic (SPEC 3)."""

from __future__ import annotations

from datetime import datetime

from gateway import DeviceNotifier

from ..ordering import OrderQueries

__all__ = ["DeviceNotices"]


class DeviceNotices:
    """Publishes each slot's latest order to a device; without a notifier (tests of the household half) it tells nobody."""

    def __init__(self, queries: OrderQueries, notifier: DeviceNotifier | None) -> None:
        self.queries = queries
        self.notifier = notifier

    def notify(self, device_id: str, now: datetime) -> None:
        """Tell a device the latest order of each of its slots."""
        if self.notifier is None:
            return
        slots = {
            slot_id: {
                "order_id": o.id,
                "status": o.status,
                "expected_delivery": o.expected_delivery.isoformat() if o.expected_delivery else None,
            }
            for slot_id, o in self.queries.latest_per_slot(device_id).items()
        }
        self.notifier.publish_orders(device_id, slots, now)
