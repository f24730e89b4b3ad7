"""The planner: one planning pass over every slot a household has set up, as plain records in and decisions out; pure.

It turns what the service loaded (the households' slot choices, the offers, budgets, consents,
forecasts, orders in flight) into one `SlotSituation` per slot, asks the policy, and keeps each
household's spending up to date as it places orders within the pass. The service around it
(`ordering.orders.Orders.plan`) loads, calls `plan`, and stores the orders.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from .needs import NO_ORDERS, NeedOrders, NotNow, need_key, order_key, snoozed
from .policy import Decision, SlotMode, SlotSituation, decide
from .status import OrderStatus

__all__ = ["Budget", "ForecastFacts", "Offer", "Placement", "Plan", "PlanInputs", "SlotChoice", "pick_offer", "plan"]

Key = tuple[str, str]  # (device id, slot id)


class ForecastFacts(Protocol):
    """What the planner reads of a slot's forecast (`gateway.ForecastView` has it)."""

    @property
    def empty_p10(self) -> datetime | None: ...
    @property
    def empty_p50(self) -> datetime | None: ...
    @property
    def empty_p90(self) -> datetime | None: ...
    @property
    def level_now(self) -> float | None: ...
    @property
    def readings_used(self) -> int: ...
    @property
    def measured(self) -> bool: ...
    @property
    def step(self) -> float: ...
    @property
    def explanation(self) -> Mapping[str, Any]: ...

    def describes(self, segment_start: datetime | None) -> bool: ...


@dataclass(frozen=True, slots=True)
class SlotChoice:
    """A household's choice for one slot: which product, how many, in which mode."""

    household_id: int
    device_id: str
    slot_id: str
    sku: str
    quantity: int
    mode: SlotMode
    substitutes: tuple[str, ...] = ()  # ranked: tried in turn once the chosen product is refused for the need
    not_now: NotNow | None = None  # the household's last "not now" (a cancel), if any

    @property
    def key(self) -> Key:
        """(device id, slot id)."""
        return (self.device_id, self.slot_id)


@dataclass(frozen=True, slots=True)
class Offer:
    """A product as it can be ordered: its price and who delivers it, how fast."""

    sku: str
    unit_price_cents: int
    currency: str
    fulfiller_id: str
    lead_time: timedelta


@dataclass(frozen=True, slots=True)
class Budget:
    """A household's monthly budget and what it has committed this month."""

    household_id: int
    monthly_budget_cents: int
    currency: str
    spent_cents: int
    cancel_window: timedelta | None = None  # the household's own hold for `auto` orders; None: the service's


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """Everything one planning pass needs, loaded by the service."""

    choices: Sequence[SlotChoice]
    offers: Mapping[str, Offer]  # by SKU
    budgets: Mapping[int, Budget]  # by household id
    owners: Mapping[str, int]  # device id -> household that claimed it
    auto_order: Mapping[str, bool]  # device id -> auto_order consent in force
    forecasts: Mapping[Key, ForecastFacts]
    segments: Mapping[Key, datetime | None]  # each slot's last refill seen (None: none yet)
    in_flight: Collection[Key]  # slots with an open order
    needs: Mapping[str, NeedOrders]  # by need key: what became of the orders placed for it
    away: Mapping[int, tuple[tuple[datetime, datetime], ...]] = field(default_factory=dict)  # by household: its time away ahead


@dataclass(frozen=True, slots=True)
class Placement:
    """An order the policy asks for: what, for whom, at what price, and why."""

    choice: SlotChoice
    offer: Offer
    decision: Decision
    need: str  # the slot's need (its refill segment)
    key: str  # the order's idempotency key: the need's next attempt (needs.order_key)
    forecast: Mapping[str, Any]  # the forecast's explanation, for the order's "why now"
    level_now: float | None = None  # the slot's level and step when placed: a cancel's "not now" starts from them
    step: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What one pass decided: orders to place, and notify-only slots to tell about."""

    placements: tuple[Placement, ...]
    notices: tuple[tuple[Key, str], ...]  # (slot, reason)


def pick_offer(choice: SlotChoice, orders: NeedOrders, offers: Mapping[str, Offer], currency: str) -> tuple[Offer | None, str]:
    """The chosen product, else the first substitute no shop has refused for this need, priced in the budget's currency; or why none.

    The budget is counted in the household's currency: a product priced in another is never
    converted silently.
    """
    candidates = [o for sku in (choice.sku, *choice.substitutes) if sku not in orders.refused and (o := offers.get(sku))]
    offer = next((o for o in candidates if o.currency == currency), None)
    if offer is not None:
        return offer, ""
    if candidates:
        return None, f"{candidates[0].sku} is priced in {candidates[0].currency}, and this household's budget is in {currency}"
    if orders.refused:
        return None, f"out of stock or cancelled by the shop: {', '.join(sorted(orders.refused))}, and no substitute left"
    return None, f"{choice.sku} is not in the catalog"


def plan(inputs: PlanInputs, now: datetime, cancel_window: timedelta, review_every: timedelta) -> Plan:
    """Run the policy over every chosen slot, in order, as the spending of each order placed adds up."""
    spent = {h: b.spent_cents for h, b in inputs.budgets.items()}
    placements: list[Placement] = []
    notices: list[tuple[Key, str]] = []
    for choice in inputs.choices:
        budget = inputs.budgets.get(choice.household_id)
        if budget is None or inputs.owners.get(choice.device_id) != choice.household_id:
            continue  # the device changed hands: its old settings do not order
        segment = inputs.segments.get(choice.key)
        need = need_key(choice.device_id, choice.slot_id, segment)
        orders = inputs.needs.get(need, NO_ORDERS)
        fc = inputs.forecasts.get(choice.key)
        if fc is not None and not fc.describes(segment):
            # A refill arrived after this forecast was made (a delivery just installed): its low
            # level is history, and acting on it would send a second parcel for one need.
            fc = None
        if snoozed(choice.not_now, fc.level_now if fc else None, now):
            continue  # the household said "not now"
        offer, why_none = pick_offer(choice, orders, inputs.offers, budget.currency)
        if offer is None:
            if why_none and not orders.live:
                notices.append((choice.key, why_none))
            continue
        cost = offer.unit_price_cents * choice.quantity
        situation = SlotSituation(
            device_id=choice.device_id,
            slot_id=choice.slot_id,
            mode=choice.mode,
            auto_order_consent=inputs.auto_order.get(choice.device_id, False),
            open_order=choice.key in inputs.in_flight or orders.live,
            empty_p10=fc.empty_p10 if fc else None,
            empty_p50=fc.empty_p50 if fc else None,
            empty_p90=fc.empty_p90 if fc else None,
            level_now=fc.level_now if fc else None,
            readings_used=fc.readings_used if fc else 0,
            use_seen=fc.measured if fc else False,
            step=fc.step if fc else 0.0,
            lead_time=offer.lead_time,
            cancel_window=budget.cancel_window or cancel_window,
            order_cost_cents=cost,
            spent_this_month_cents=spent.get(choice.household_id, 0),
            monthly_budget_cents=budget.monthly_budget_cents,
            currency=budget.currency,
            away=inputs.away.get(choice.household_id, ()),
        )
        decision = decide(situation, now, review_every)
        if decision.action == "notify":
            notices.append((choice.key, decision.reason))
        elif decision.action == "order":
            placement = Placement(choice, offer, decision, need, order_key(need, orders), dict(fc.explanation) if fc else {}, fc.level_now if fc else None, fc.step if fc else 0.0)
            placements.append(placement)
            if decision.status is OrderStatus.HELD:  # committed money; one waiting for approval is not (yet), as across passes
                spent[choice.household_id] = spent.get(choice.household_id, 0) + cost
    return Plan(tuple(placements), tuple(notices))
