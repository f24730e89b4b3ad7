"""Reading orders: one, a household's, a fulfilment system's, and the latest per slot of a device."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..storage import Household, Order, Product, SlotSetting
from .needs import NotNow
from .status import OrderStatus, takes_events

__all__ = ["OrderQueries"]


class OrderQueries:
    """Read-only access to orders."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, order_id: str) -> Order | None:
        """One order."""
        with Session(self.engine) as s:
            return s.get(Order, order_id)

    def for_household(self, household_id: int, limit: int = 200) -> list[Order]:
        """A household's orders, newest first."""
        with Session(self.engine) as s:
            q = select(Order).where(Order.household_id == household_id).order_by(col(Order.created_at).desc()).limit(limit)
            return list(s.exec(q))

    def for_fulfiller(self, fulfiller_id: str, statuses: Sequence[str], limit: int = 500) -> list[tuple[Order, Household | None]]:
        """A fulfilment system's orders released to it, in some statuses, oldest release first, each with its household.

        Only an order once released is the system's to see (`released_at` set), in any status it reached
        from there; one held, awaiting approval, or cancelled by the household before release never is.
        """
        wanted = [status.value for status in OrderStatus if status in statuses and takes_events(status)]
        with Session(self.engine) as s:
            q = (
                select(Order, Household)
                .join(Household, col(Household.id) == col(Order.household_id), isouter=True)
                .where(Order.fulfiller_id == fulfiller_id, col(Order.released_at).is_not(None), col(Order.status).in_(wanted))
                .order_by(col(Order.released_at), col(Order.id))
                .limit(limit)
            )
            return [(o, h) for o, h in s.exec(q)]

    def not_now(self, household_id: int) -> dict[tuple[str, str], NotNow]:
        """The household's slots held by a "not now", by (device, slot)."""
        with Session(self.engine) as s:
            q = select(SlotSetting).where(SlotSetting.household_id == household_id, col(SlotSetting.not_before).is_not(None))
            return {(x.device_id, x.slot_id): NotNow(x.not_before, x.not_above_level) for x in s.exec(q) if x.not_before is not None}

    def chosen_slots(self, household_id: int) -> set[tuple[str, str]]:
        """The household's slots with a product chosen, by (device, slot)."""
        with Session(self.engine) as s:
            return {(x.device_id, x.slot_id) for x in s.exec(select(SlotSetting).where(SlotSetting.household_id == household_id))}

    def product_name(self, sku: str) -> str | None:
        """A product's name."""
        with Session(self.engine) as s:
            product = s.get(Product, sku)
            return product.name if product else None

    def household(self, household_id: int) -> Household | None:
        """The household an order is for."""
        with Session(self.engine) as s:
            return s.get(Household, household_id)

    def latest_per_slot(self, device_id: str) -> dict[str, Order]:
        """The latest order of each slot of a device."""
        with Session(self.engine) as s:
            q = select(Order).where(Order.device_id == device_id).order_by(col(Order.created_at))
            return {o.slot_id: o for o in s.exec(q)}
