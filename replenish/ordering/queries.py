"""Reading orders: one, a household's, a fulfilment system's, and the latest per slot of a device."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..storage import Household, Order

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
        """A fulfilment system's orders in some statuses, oldest first, each with its household."""
        with Session(self.engine) as s:
            q = (
                select(Order, Household)
                .join(Household, col(Household.id) == col(Order.household_id), isouter=True)
                .where(Order.fulfiller_id == fulfiller_id, col(Order.status).in_(list(statuses)))
                .order_by(col(Order.released_at))
                .limit(limit)
            )
            return [(o, h) for o, h in s.exec(q)]

    def household(self, household_id: int) -> Household | None:
        """The household an order is for."""
        with Session(self.engine) as s:
            return s.get(Household, household_id)

    def latest_per_slot(self, device_id: str) -> dict[str, Order]:
        """The latest order of each slot of a device."""
        with Session(self.engine) as s:
            q = select(Order).where(Order.device_id == device_id).order_by(col(Order.created_at))
            return {o.slot_id: o for o in s.exec(q)}
