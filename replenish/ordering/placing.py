"""The planning pass's I/O half: loads what the planner needs, places the orders it asks for, tells the devices."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gateway import GatewayStorage

from ..events import MessageBus
from ..households import Consents, Households
from ..storage import Fulfiller, Household, Order, Product, SlotSetting
from .needs import NO_ORDERS, NotNow, need_key, need_orders, order_key
from .planner import Budget, Offer, Placement, PlanInputs, SlotChoice, pick_offer, plan
from .policy import Decision
from .ports import AwayPeriods
from .policy import SlotMode
from .actions import changed
from .status import COMMITTED, OPEN, OrderStatus

__all__ = ["OrderPlacer", "PlanResult", "Quote"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlanResult:
    """What one planning pass did."""

    placed: tuple[str, ...]
    notified: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Quote:
    """What "order now" would order for a slot, at what price, and what stands in its way ('' when nothing)."""

    choice: SlotChoice
    offer: Offer | None
    cost_cents: int
    currency: str
    over_budget: bool  # it would wait for approval
    blocked: str
    need: str
    key: str
    level_now: float | None
    step: float


AWAY_HORIZON = timedelta(days=180)  # time away further ahead than this cannot change an order placed now


def _month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class OrderPlacer:
    """Runs the planner over every slot a household has set up and stores the orders it places."""

    def __init__(
        self,
        engine: Engine,
        gateway: GatewayStorage,
        households: Households,
        consents: Consents,
        bus: MessageBus,
        cancel_window: timedelta,
        review_every: timedelta,
        away: AwayPeriods | None = None,
    ) -> None:
        self.engine = engine
        self.gateway = gateway
        self.households = households
        self.consents = consents
        self.bus = bus
        self.cancel_window = cancel_window
        self.review_every = review_every
        self.away = away

    def plan(self, now: datetime) -> PlanResult:
        """One planning pass: load, plan, place."""
        inputs = self.load(now)
        if inputs is None:
            return PlanResult((), ())
        result = plan(inputs, now, self.cancel_window, self.review_every)
        for (device_id, slot_id), reason in result.notices:
            log.info("notify-only slot %s/%s: %s", device_id, slot_id, reason)
        placed = [o for p in result.placements if (o := self._place(now, p)) is not None]
        self.bus.publish(*(changed(o, now) for o in placed))
        return PlanResult(tuple(o.id for o in placed), tuple(f"{d}/{s}" for (d, s), _ in result.notices))

    def quote(self, household_id: int, device_id: str, slot_id: str, now: datetime) -> Quote:
        """What a household's "order now" for one of its slots would place: product, price, budget, or why it cannot."""
        inputs = self.load(now, household_id)  # the household's own slots, not the fleet's
        choice = next((c for c in inputs.choices if c.key == (device_id, slot_id)), None) if inputs else None
        if inputs is None or choice is None or choice.household_id != household_id or inputs.owners.get(device_id) != household_id:
            raise LookupError("no such slot of yours, or no product chosen for it")
        budget = inputs.budgets[household_id]
        need = need_key(device_id, slot_id, inputs.segments.get(choice.key))
        orders = inputs.needs.get(need, NO_ORDERS)
        offer, why_none = pick_offer(choice, orders, inputs.offers, budget.currency)
        cost = offer.unit_price_cents * choice.quantity if offer else 0
        if not inputs.auto_order.get(device_id, False):
            blocked = "allow auto order for this device first"
        elif choice.key in inputs.in_flight or orders.live:
            blocked = "an order for this slot is already on its way"
        else:
            blocked = why_none
        fc = inputs.forecasts.get(choice.key)
        over = budget.spent_cents + cost > budget.monthly_budget_cents
        return Quote(choice, offer, cost, budget.currency, over, blocked, need, order_key(need, orders), fc.level_now if fc else None, fc.step if fc else 0.0)

    def order_now(self, household_id: int, device_id: str, slot_id: str, now: datetime) -> Order:
        """The household's one-click order for a slot: released at the next tick, or waiting for approval over the budget."""
        q = self.quote(household_id, device_id, slot_id, now)
        if q.blocked or q.offer is None:
            raise ValueError(q.blocked or "nothing to order")
        summary = "ordered now by the household" + ("; over the monthly budget, so it waits for approval" if q.over_budget else "")
        status = OrderStatus.AWAITING_APPROVAL if q.over_budget else OrderStatus.HELD
        decision = Decision("order", summary, status, None if q.over_budget else now, {"order_now": True, "order_cost_cents": q.cost_cents})
        order = self._place(now, Placement(q.choice, q.offer, decision, q.need, q.key, {}, q.level_now, q.step))
        if order is None:
            raise ValueError("an order for this slot was placed meanwhile")
        self.bus.publish(changed(order, now))
        return order

    def load(self, now: datetime, household: int | None = None) -> PlanInputs | None:
        """The planner's inputs as the database has them now (every household's, or one's); None when no slot is set up."""
        with Session(self.engine) as s:
            settings_q, households_q, spent_q = select(SlotSetting), select(Household), select(Order.household_id, func.sum(Order.unit_price_cents * Order.quantity))
            if household is not None:
                settings_q, households_q = settings_q.where(SlotSetting.household_id == household), households_q.where(Household.id == household)
                spent_q = spent_q.where(Order.household_id == household)
            settings = list(s.exec(settings_q))
            if not settings:
                return None
            device_ids = sorted({x.device_id for x in settings})
            fulfillers = {f.id: f for f in s.exec(select(Fulfiller))}
            offers = {p.sku: _offer(p, fulfillers[p.fulfiller_id]) for p in s.exec(select(Product))}
            households = list(s.exec(households_q))
            orders = list(s.exec(select(Order.device_id, Order.slot_id, Order.status, Order.need, Order.sku, Order.ended_by).where(col(Order.device_id).in_(device_ids))))
            spent = dict(
                s.exec(  # type: ignore[call-overload]
                    spent_q.where(col(Order.status).in_(list(COMMITTED)), col(Order.created_at) >= _month_start(now))
                    .group_by(Order.household_id)
                ).all()
            )
        return PlanInputs(
            choices=[
                SlotChoice(x.household_id, x.device_id, x.slot_id, x.sku, x.quantity, SlotMode(x.mode), tuple(x.substitutes or ()), _not_now(x))
                for x in settings
            ],
            offers=offers,
            budgets={h.id: _budget(h, int(spent.get(h.id, 0) or 0)) for h in households if h.id is not None},
            owners=self.households.owners(device_ids),
            auto_order=self.consents.auto_order(device_ids),
            forecasts=self.gateway.forecasts.views(device_ids),
            segments={(sl.device_id, sl.slot_id): sl.segment_start for sl in self.gateway.registry.slots(device_ids)},
            in_flight={(d, sl) for d, sl, status, *_ in orders if status in OPEN},
            needs=need_orders((need, status, sku, ended_by) for _, _, status, need, sku, ended_by in orders),
            away=self._away({x.household_id for x in settings}, now),
        )

    def _away(self, households: set[int], now: datetime) -> dict[int, tuple[tuple[datetime, datetime], ...]]:
        """Each household's time away over the coming months, as the policy reads it."""
        if self.away is None or not households:
            return {}
        return {h: tuple(sorted((start, end) for start, end in periods)) for h, periods in self.away(households, now, now + AWAY_HORIZON).items() if periods}

    def _place(self, now: datetime, p: Placement) -> Order | None:
        decision = p.decision
        order = Order(
            id=str(uuid.uuid4()),
            idempotency_key=p.key,
            need=p.need,
            household_id=p.choice.household_id,
            device_id=p.choice.device_id,
            slot_id=p.choice.slot_id,
            fulfiller_id=p.offer.fulfiller_id,
            sku=p.offer.sku,
            quantity=p.choice.quantity,
            unit_price_cents=p.offer.unit_price_cents,
            currency=p.offer.currency,
            status=(decision.status or OrderStatus.HELD).value,
            reason={"summary": decision.reason, "policy": decision.why, "forecast": dict(p.forecast), "level_now": p.level_now, "step": p.step},
            created_at=now,
            release_at=decision.release_at,
            updated_at=now,
        )
        try:
            with Session(self.engine) as s:
                if order.status == OrderStatus.HELD:
                    self._within_budget(s, order, now)
                s.add(order)
                s.commit()
                s.refresh(order)
        except IntegrityError:  # another serving process placed this attempt, or an order for the slot, meanwhile
            log.info("an order for this need or slot of %s/%s exists already; not placing another", order.device_id, order.slot_id)
            return None
        log.info("placed order %s for %s/%s (%s): %s", order.id, order.device_id, order.slot_id, order.status, decision.reason)
        return order


    @staticmethod
    def _within_budget(s: Session, order: Order, now: datetime) -> None:
        """Hold the order only if the household's month still has room once every committed order is counted; else it waits for approval.

        The plan counted the spending it loaded; another serving process may have committed orders
        since. So the transaction first writes the household's row (its budget, unchanged): that
        locks the row on PostgreSQL and takes SQLite's one write lock, and a second placement for
        the household waits there until the first has committed, then counts it.
        """
        s.exec(update(Household).where(col(Household.id) == order.household_id).values(monthly_budget_cents=Household.monthly_budget_cents))  # type: ignore[call-overload]
        household = s.exec(select(Household).where(Household.id == order.household_id)).one()
        spent = s.exec(
            select(func.coalesce(func.sum(col(Order.unit_price_cents) * col(Order.quantity)), 0)).where(
                Order.household_id == order.household_id, col(Order.status).in_(list(COMMITTED)), col(Order.created_at) >= _month_start(now)
            )
        ).one()
        if int(spent) + order.unit_price_cents * order.quantity > household.monthly_budget_cents:
            order.status, order.release_at = OrderStatus.AWAITING_APPROVAL.value, None
            order.reason = {**order.reason, "summary": f"{order.reason['summary']}; over the monthly budget once other orders placed meanwhile were counted, so it waits for approval"}


def _budget(h: Household, spent_cents: int) -> Budget:
    assert h.id is not None
    window = timedelta(hours=h.cancel_window_hours) if h.cancel_window_hours is not None else None
    return Budget(h.id, h.monthly_budget_cents, h.currency, spent_cents, window)


def _not_now(setting: SlotSetting) -> NotNow | None:
    return NotNow(setting.not_before, setting.not_above_level) if setting.not_before is not None else None


def _offer(product: Product, fulfiller: Fulfiller) -> Offer:
    return Offer(product.sku, product.unit_price_cents, product.currency, fulfiller.id, timedelta(days=fulfiller.lead_time_days))
