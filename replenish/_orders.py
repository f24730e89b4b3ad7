"""Orders: planning with the pure policy, the cancel window, release through the outbox, fulfilment events."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gateway import MEASURED_METHODS, DeviceNotifier, GatewayStore, parse_rfc3339

from ._households import Households
from ._models import Fulfiller, Household, Order, OrderEvent, OutboxMessage, Product, SlotSetting
from ._policy import Decision, SlotSituation, decide

__all__ = ["OPEN_STATUSES", "EventRejected", "Orders"]

log = logging.getLogger(__name__)

OPEN_STATUSES = ("awaiting_approval", "held", "released", "accepted", "shipped")
COMMITTED_STATUSES = ("held", "released", "accepted", "shipped", "delivered")  # count against the budget
# Fulfilment events only move an order forward; a late `shipped` after `delivered` changes nothing.
_RANK = {"released": 2, "accepted": 3, "shipped": 4, "delivered": 5}
EVENT_TYPES = ("accepted", "shipped", "delivered", "cancelled", "out_of_stock")


class EventRejected(ValueError):
    """A fulfilment event that cannot apply; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True, slots=True)
class PlanResult:
    """What one planning pass did."""

    placed: tuple[str, ...]
    notified: tuple[str, ...]


def _month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Orders:
    """Places, holds, releases and tracks orders."""

    def __init__(
        self,
        engine: Engine,
        store: GatewayStore,
        households: Households,
        notifier: DeviceNotifier | None,
        cancel_window: timedelta,
        review_every: timedelta,
    ) -> None:
        self.engine = engine
        self.store = store
        self.households = households
        self.notifier = notifier
        self.cancel_window = cancel_window
        self.review_every = review_every

    # --- planning -----------------------------------------------------------------------

    def plan(self, now: datetime) -> PlanResult:
        """Run the policy over every slot a household has set up; place the orders it asks for."""
        with Session(self.engine) as s:
            settings = list(s.exec(select(SlotSetting)))
            if not settings:
                return PlanResult((), ())
            device_ids = sorted({x.device_id for x in settings})
            products = {p.sku: p for p in s.exec(select(Product))}
            fulfillers = {f.id: f for f in s.exec(select(Fulfiller))}
            households = {h.id: h for h in s.exec(select(Household))}
            open_slots = {
                (o.device_id, o.slot_id)
                for o in s.exec(select(Order).where(col(Order.status).in_(OPEN_STATUSES), col(Order.device_id).in_(device_ids)))
            }
            spent = dict(
                s.exec(  # type: ignore[call-overload]
                    select(Order.household_id, func.sum(Order.unit_price_cents * Order.quantity))
                    .where(col(Order.status).in_(COMMITTED_STATUSES), col(Order.created_at) >= _month_start(now))
                    .group_by(Order.household_id)
                ).all()
            )
        owners = self.households.owners(device_ids)
        consents = self.households.consents(device_ids)
        forecasts = self.store.forecasts(device_ids)
        segments = {(sl.device_id, sl.slot_id): sl.segment_start for sl in self.store.slots(device_ids)}
        placed: list[str] = []
        placed_devices: set[str] = set()
        notified: list[str] = []
        for setting in settings:
            key = (setting.device_id, setting.slot_id)
            product = products[setting.sku]
            household = households.get(setting.household_id)
            if household is None or owners.get(setting.device_id) != setting.household_id:
                continue  # the device changed hands; its old settings do not order
            fulfiller = fulfillers[product.fulfiller_id]
            fc = forecasts.get(key)
            segment = segments.get(key)
            if fc is not None and fc.explanation.get("segment_start", "") != (segment.isoformat() if segment else None):
                # A refill arrived after this forecast was made (a delivery just installed): its
                # low level is history, and acting on it would send a second parcel for one need.
                fc = None
            situation = SlotSituation(
                device_id=setting.device_id,
                slot_id=setting.slot_id,
                mode=setting.mode,  # type: ignore[arg-type]
                auto_order_consent=consents.get((setting.device_id, "auto_order"), False),
                open_order=key in open_slots,
                empty_p10=fc.empty_p10 if fc else None,
                empty_p50=fc.empty_p50 if fc else None,
                empty_p90=fc.empty_p90 if fc else None,
                level_now=fc.level_now if fc else None,
                readings_used=fc.n_used if fc else 0,
                use_seen=bool(fc) and fc.explanation.get("method") in MEASURED_METHODS,  # type: ignore[union-attr]
                step=float(fc.explanation.get("step") or 0.0) if fc else 0.0,
                lead_time=timedelta(days=fulfiller.lead_time_days),
                cancel_window=self.cancel_window,
                order_cost_cents=product.unit_price_cents * setting.quantity,
                spent_this_month_cents=int(spent.get(household.id, 0) or 0),
                monthly_budget_cents=household.monthly_budget_cents,
                currency=household.currency,
            )
            decision = decide(situation, now, self.review_every)
            if decision.action == "notify":
                notified.append(f"{setting.device_id}/{setting.slot_id}")
                log.info("notify-only slot %s/%s: %s", setting.device_id, setting.slot_id, decision.reason)
            elif decision.action == "order":
                order = self._place(now, setting, product, household, fulfiller, decision, segment, fc.explanation if fc else {})
                if order is not None:
                    placed.append(order.id)
                    placed_devices.add(order.device_id)
                    spent[household.id] = int(spent.get(household.id, 0) or 0) + order.unit_price_cents * order.quantity
        for device_id in sorted(placed_devices):
            self.notify_device(device_id, now)
        return PlanResult(tuple(placed), tuple(notified))

    def _place(
        self,
        now: datetime,
        setting: SlotSetting,
        product: Product,
        household: Household,
        fulfiller: Fulfiller,
        decision: Decision,
        segment: datetime | None,
        forecast: dict[str, Any],
    ) -> Order | None:
        need = segment.isoformat() if segment else "first"
        order = Order(
            id=str(uuid.uuid4()),
            idempotency_key=f"{setting.device_id}:{setting.slot_id}:{need}",
            household_id=household.id or 0,
            device_id=setting.device_id,
            slot_id=setting.slot_id,
            fulfiller_id=fulfiller.id,
            sku=product.sku,
            quantity=setting.quantity,
            unit_price_cents=product.unit_price_cents,
            currency=product.currency,
            status=decision.status or "held",
            reason={"summary": decision.reason, "policy": decision.why, "forecast": forecast},
            created_at=now,
            release_at=decision.release_at,
            updated_at=now,
        )
        try:
            with Session(self.engine) as s:
                s.add(order)
                s.commit()
                s.refresh(order)
        except IntegrityError:
            log.info("an order for this need of %s/%s exists already; not placing another", setting.device_id, setting.slot_id)
            return None
        log.info("placed order %s for %s/%s (%s): %s", order.id, order.device_id, order.slot_id, order.status, decision.reason)
        return order

    # --- household actions ----------------------------------------------------------------

    def _owned(self, s: Session, household_id: int, order_id: str) -> Order:
        order = s.get(Order, order_id)
        if order is None or order.household_id != household_id:
            raise LookupError("no such order")
        return order

    def cancel(self, household_id: int, order_id: str, now: datetime) -> Order:
        """Cancel an order still in its cancel window or waiting for approval."""
        with Session(self.engine) as s:
            order = self._owned(s, household_id, order_id)
            if order.status not in ("held", "awaiting_approval"):
                raise ValueError(f"an order that is {order.status} can no longer be cancelled here")
            order.status, order.updated_at = "cancelled", now
            s.add(order)
            s.commit()
            s.refresh(order)
        self.notify_device(order.device_id, now)
        return order

    def approve(self, household_id: int, order_id: str, now: datetime) -> Order:
        """Approve an order: it is released to fulfilment at once (the approval is the household's check)."""
        with Session(self.engine) as s:
            order = self._owned(s, household_id, order_id)
            if order.status != "awaiting_approval":
                raise ValueError(f"an order that is {order.status} does not wait for approval")
            self._release(s, order, now)
            s.commit()
            s.refresh(order)
        self.notify_device(order.device_id, now)
        return order

    def cancel_open_for_device(self, device_id: str, now: datetime) -> list[str]:
        """Consent withdrawn: cancel every order of the device not yet released."""
        with Session(self.engine) as s:
            q = select(Order).where(Order.device_id == device_id, col(Order.status).in_(("held", "awaiting_approval")))
            cancelled = []
            for order in s.exec(q):
                order.status, order.updated_at = "cancelled", now
                s.add(order)
                cancelled.append(order.id)
            s.commit()
        if cancelled:
            self.notify_device(device_id, now)
        return cancelled

    # --- release ------------------------------------------------------------------------

    def _release(self, s: Session, order: Order, now: datetime) -> None:
        household = s.get(Household, order.household_id)
        assert household is not None
        order.status, order.released_at, order.updated_at = "released", now, now
        s.add(order)
        body = {
            "type": "order.released",
            "order": {
                "id": order.id,
                "idempotency_key": order.idempotency_key,
                "household_ref": household.pseudonym,
                "shipping_address": household.address,
                "items": [
                    {"sku": order.sku, "quantity": order.quantity, "unit_price": order.unit_price_cents / 100, "currency": order.currency}
                ],
                "device_id": order.device_id,
                "slot_id": order.slot_id,
                "reason": order.reason.get("summary"),
                "forecast": order.reason.get("forecast"),
                "created_at": order.created_at.isoformat(),
                "released_at": now.isoformat(),
            },
        }
        s.add(
            OutboxMessage(
                webhook_id="msg_" + uuid.uuid4().hex,
                order_id=order.id,
                fulfiller_id=order.fulfiller_id,
                event_type="order.released",
                payload=json.dumps(body, separators=(",", ":")),
                next_attempt_at=now,
                created_at=now,
            )
        )

    def release_due(self, now: datetime) -> list[str]:
        """Release held orders whose cancel window has passed, with their webhook, in one transaction each."""
        released: list[str] = []
        with Session(self.engine) as s:
            due = list(s.exec(select(Order).where(Order.status == "held", col(Order.release_at) <= now).with_for_update(skip_locked=True)))
            consents = self.households.consents(sorted({o.device_id for o in due}))
            for order in due:
                if not consents.get((order.device_id, "auto_order"), False):
                    order.status, order.updated_at = "cancelled", now  # consent went away meanwhile
                    s.add(order)
                    continue
                self._release(s, order, now)
                released.append(order.id)
            s.commit()
            devices = {o.device_id for o in due}
        for device_id in devices:
            self.notify_device(device_id, now)
        return released

    # --- fulfilment events ------------------------------------------------------------------

    def apply_event(self, fulfiller_id: str, order_id: str, event: dict[str, Any], now: datetime) -> tuple[Order, bool]:
        """Apply a fulfilment event; idempotent by event id, and safe when events arrive out of order."""
        etype = event.get("type")
        event_id = event.get("event_id")
        if etype not in EVENT_TYPES:
            raise EventRejected(422, f"type must be one of {', '.join(EVENT_TYPES)}")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 128:
            raise EventRejected(422, "event_id must be a string of 1-128 characters")
        at = _parse_time(event.get("at"), "at") or now
        eta = _parse_time(event.get("eta"), "eta")
        tracking = event.get("tracking")
        if tracking is not None and (not isinstance(tracking, str) or len(tracking) > 128):
            raise EventRejected(422, "tracking must be a string of at most 128 characters")
        with Session(self.engine) as s:
            order = s.get(Order, order_id)
            if order is None or order.fulfiller_id != fulfiller_id:
                raise EventRejected(404, "no such order for this fulfilment system")
            if order.status in ("awaiting_approval", "held"):
                raise EventRejected(409, "the order has not been released yet")
            seen = s.exec(select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.event_id == event_id)).first()
            if seen is not None:
                return order, False
            s.add(OrderEvent(order_id=order_id, event_id=event_id, type=etype, at=at, received_at=now, payload=event))
            changed = self._advance(order, etype, eta, tracking)
            if changed:
                order.updated_at = now
                s.add(order)
            try:
                s.commit()
            except IntegrityError:  # the same event raced in on another worker
                s.rollback()
                return order, False
            s.refresh(order)
        if changed:
            self.notify_device(order.device_id, now)
        return order, changed

    @staticmethod
    def _advance(order: Order, etype: str, eta: datetime | None, tracking: str | None) -> bool:
        if eta is not None:
            order.expected_delivery = eta
        if tracking:
            order.tracking = tracking
        if order.status in ("delivered", "cancelled", "out_of_stock"):
            return eta is not None or bool(tracking)
        if etype in _RANK:
            if _RANK[etype] > _RANK.get(order.status, 0):
                order.status = etype
                return True
            return eta is not None or bool(tracking)
        order.status = etype  # cancelled / out_of_stock end the order
        return True

    # --- reading ------------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        """One order."""
        with Session(self.engine) as s:
            return s.get(Order, order_id)

    def for_household(self, household_id: int, limit: int = 200) -> list[Order]:
        """A household's orders, newest first."""
        with Session(self.engine) as s:
            q = select(Order).where(Order.household_id == household_id).order_by(col(Order.created_at).desc()).limit(limit)
            return list(s.exec(q))

    def for_fulfiller(self, fulfiller_id: str, statuses: Sequence[str], limit: int = 500) -> list[Order]:
        """A fulfilment system's orders in some statuses, oldest first."""
        with Session(self.engine) as s:
            q = (
                select(Order)
                .where(Order.fulfiller_id == fulfiller_id, col(Order.status).in_(list(statuses)))
                .order_by(col(Order.released_at))
                .limit(limit)
            )
            return list(s.exec(q))

    def notify_device(self, device_id: str, now: datetime) -> None:
        """Tell a device the latest order of each of its slots."""
        if self.notifier is None:
            return
        with Session(self.engine) as s:
            q = select(Order).where(Order.device_id == device_id).order_by(col(Order.created_at))
            latest: dict[str, Order] = {o.slot_id: o for o in s.exec(q)}
        slots = {
            slot_id: {
                "order_id": o.id,
                "status": o.status,
                "expected_delivery": o.expected_delivery.isoformat() if o.expected_delivery else None,
            }
            for slot_id, o in latest.items()
        }
        self.notifier.publish_orders(device_id, slots, now)


def _parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventRejected(422, f"{name} must be an RFC 3339 string")
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise EventRejected(422, f"{name} {exc}") from None
