"""A slot's need and the orders placed for it; a household's "not now"; pure.

A need is one refill segment of one slot: between two refills the slot needs one parcel (SPEC 5:
never two orders for one need). An order ends without meeting its need when the household cancels
it, when its `auto_order` consent goes, or when the fulfilment system cancels it or is out of
stock: the need is then ordered again, as a new attempt with a key of its own, so that

- a retry after a cancel is one new order, once the household's "not now" has passed;
- a substitute after an out-of-stock (or a fulfilment system's cancel) is one new order, for a
  product not yet refused for this need;
- a crash between deciding and committing places nothing twice: every serving process derives
  the same attempt, hence the same key, and the database keeps one order per key.

"Not now" (a household's cancel) holds the slot until a date (by default three days on) or until
its level has dropped another step, whichever comes first; "never" is the `notify` mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from .status import OrderStatus

__all__ = [
    "NOT_NOW",
    "NO_ORDERS",
    "EndedBy",
    "NeedOrders",
    "NotNow",
    "need_key",
    "need_orders",
    "not_now_after_cancel",
    "order_key",
    "snoozed",
]

NOT_NOW = timedelta(days=3)  # how long a household's cancel holds a slot, unless its level drops first
MIN_DROP = 0.10  # "another step" for a slot that reports finer than 10 % steps, as a fraction of capacity
# The need is met, or being met, while one of its orders is in any of these (a delivered spare not
# yet installed counts as stock: its refill opens the next need).
LIVE: frozenset[OrderStatus] = frozenset(
    (OrderStatus.AWAITING_APPROVAL, OrderStatus.HELD, OrderStatus.RELEASED, OrderStatus.ACCEPTED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)
)


class EndedBy(StrEnum):
    """Who ended an order before it met its need."""

    HOUSEHOLD = "household"  # "not now": the slot waits (NotNow), the product stays the choice
    CONSENT = "consent"  # auto_order withdrawn: nothing is ordered until it is given again
    FULFILMENT = "fulfilment"  # cancelled or out of stock there: the next substitute is tried


@dataclass(frozen=True, slots=True)
class NeedOrders:
    """What became of the orders placed for one need."""

    attempts: int  # orders placed for it so far, whatever became of them
    live: bool  # one of them is open or delivered: nothing more is ordered for this need
    refused: frozenset[str]  # SKUs its fulfilment systems cancelled or had out of stock


NO_ORDERS = NeedOrders(0, False, frozenset())


def need_key(device_id: str, slot_id: str, segment_start: datetime | None) -> str:
    """A slot's current need: its refill segment (the segment's start, or 'first' before any refill)."""
    return f"{device_id}:{slot_id}:{segment_start.astimezone(UTC).isoformat() if segment_start else 'first'}"


def order_key(need: str, orders: NeedOrders) -> str:
    """The idempotency key of the next order for a need: the need itself first, then `need#2`, `need#3`..."""
    return need if orders.attempts == 0 else f"{need}#{orders.attempts + 1}"


def need_orders(rows: Iterable[tuple[str, str, str, str | None]]) -> dict[str, NeedOrders]:
    """Per need, its orders summed up, from (need, status, sku, ended by) of every order placed."""
    attempts: dict[str, int] = {}
    live: set[str] = set()
    refused: dict[str, set[str]] = {}
    for need, status, sku, ended_by in rows:
        attempts[need] = attempts.get(need, 0) + 1
        if OrderStatus(status) in LIVE:
            live.add(need)
        elif OrderStatus(status) is OrderStatus.OUT_OF_STOCK or ended_by == EndedBy.FULFILMENT:
            refused.setdefault(need, set()).add(sku)
    return {need: NeedOrders(n, need in live, frozenset(refused.get(need, ()))) for need, n in attempts.items()}


@dataclass(frozen=True, slots=True)
class NotNow:
    """A household's "not now" for a slot: no order before `until`, unless the level falls to `below`."""

    until: datetime
    below: float | None  # a fraction of capacity; None: only the date counts


def not_now_after_cancel(now: datetime, level: float | None, step: float, hold: timedelta = NOT_NOW) -> NotNow:
    """What a household's cancel means: wait `hold`, or until the level is another step (at least 10 %) below today's."""
    below = None if level is None else max(level - max(step, MIN_DROP), 0.0)
    return NotNow(now + hold, below)


def snoozed(not_now: NotNow | None, level: float | None, now: datetime) -> bool:
    """Whether a household's "not now" still holds the slot."""
    if not_now is None or now >= not_now.until:
        return False
    return not (not_now.below is not None and level is not None and level <= not_now.below + 1e-9)
