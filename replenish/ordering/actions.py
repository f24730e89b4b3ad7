"""What happens to an order before fulfilment has it: the household cancels or approves, the cancel window ends."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..events import ConsentChanged, MessageBus, OrderChanged
from ..households import Consents, ConsentScope
from ..storage import Household, Order, SlotSetting
from .needs import EndedBy, NotNow, not_now_after_cancel
from .ports import ReleaseOutbox
from .status import CANCELLABLE, OrderStatus

__all__ = ["OrderActions", "changed"]

log = logging.getLogger(__name__)


def changed(order: Order, now: datetime) -> OrderChanged:
    """The event of an order's new status, to publish once it has committed."""
    return OrderChanged(order.id, order.device_id, order.slot_id, order.status, order.ended_by, now)


class OrderActions:
    """Cancel, approve and release orders; each change is one transaction, published on the bus after it."""

    def __init__(self, engine: Engine, consents: Consents, outbox: ReleaseOutbox, bus: MessageBus) -> None:
        self.engine = engine
        self.consents = consents
        self.outbox = outbox
        self.bus = bus

    def _owned(self, s: Session, household_id: int, order_id: str) -> Order:
        order = s.get(Order, order_id)
        if order is None or order.household_id != household_id:
            raise LookupError("no such order")
        return order

    def cancel(self, household_id: int, order_id: str, now: datetime) -> Order:
        """Cancel an order still in its cancel window or waiting for approval: "not now" for its slot (ordering.needs)."""
        with Session(self.engine) as s:
            order = self._owned(s, household_id, order_id)
            if order.status not in CANCELLABLE:
                raise ValueError(f"an order that is {order.status} can no longer be cancelled here")
            self._set(s, order, OrderStatus.CANCELLED, now, "cancelled by the household", EndedBy.HOUSEHOLD)
            setting = s.get(SlotSetting, (order.device_id, order.slot_id))
            if setting is not None and setting.household_id == household_id:
                level, step = order.reason.get("level_now"), order.reason.get("step") or 0.0
                not_now = not_now_after_cancel(now, level if isinstance(level, int | float) else None, float(step))
                setting.not_before, setting.not_above_level = not_now.until, not_now.below
                s.add(setting)
            s.commit()
            s.refresh(order)
        self.bus.publish(changed(order, now))
        return order

    def set_not_now(self, household_id: int, device_id: str, slot_id: str, not_now: NotNow | None) -> None:
        """The household changes (or ends, with None) a slot's "not now"."""
        with Session(self.engine) as s:
            setting = s.get(SlotSetting, (device_id, slot_id))
            if setting is None or setting.household_id != household_id:
                raise LookupError("no such slot of yours")
            setting.not_before = not_now.until if not_now else None
            setting.not_above_level = not_now.below if not_now else None
            s.add(setting)
            s.commit()

    def approve(self, household_id: int, order_id: str, now: datetime) -> Order:
        """Approve an order: it is released to fulfilment at once, if its device's auto_order consent still holds."""
        with Session(self.engine) as s:
            order = self._owned(s, household_id, order_id)
            if order.status != OrderStatus.AWAITING_APPROVAL:
                raise ValueError(f"an order that is {order.status} does not wait for approval")
            if not self.consents.auto_order([order.device_id]).get(order.device_id, False):
                # Withdrawal cancels waiting orders at once; this catches one placed in the same instant.
                self._set(s, order, OrderStatus.CANCELLED, now, "no auto_order consent at approval", EndedBy.CONSENT)
                s.commit()
                s.refresh(order)
                self.bus.publish(changed(order, now))
                raise ValueError("this device's auto_order consent was withdrawn, so the order is cancelled")
            self._release(s, order, now)
            s.commit()
            s.refresh(order)
        self.bus.publish(changed(order, now))
        return order

    def cancel_open_for_device(self, device_id: str, now: datetime) -> list[str]:
        """Cancel every order of the device not yet released (its `auto_order` consent was withdrawn)."""
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(Order).where(Order.device_id == device_id, col(Order.status).in_(list(CANCELLABLE)))
            cancelled = list(s.exec(q))
            for order in cancelled:
                self._set(s, order, OrderStatus.CANCELLED, now, "auto_order consent withdrawn", EndedBy.CONSENT)
            s.commit()
        self.bus.publish(*(changed(o, now) for o in cancelled))
        return [o.id for o in cancelled]

    def on_consent_changed(self, event: ConsentChanged) -> None:
        """SPEC 4: withdrawing auto_order takes effect at once, also for orders waiting in their cancel window."""
        if event.scope == ConsentScope.AUTO_ORDER and not event.granted:
            self.cancel_open_for_device(event.device_id, event.at)

    def release_due(self, now: datetime) -> list[str]:
        """Release held orders whose cancel window has passed, with their webhook, in one transaction."""
        released: list[str] = []
        with Session(self.engine, expire_on_commit=False) as s:
            due = list(s.exec(select(Order).where(Order.status == OrderStatus.HELD, col(Order.release_at) <= now).with_for_update(skip_locked=True)))
            consent = self.consents.auto_order(sorted({o.device_id for o in due}))
            for order in due:
                if not consent.get(order.device_id, False):
                    self._set(s, order, OrderStatus.CANCELLED, now, "no auto_order consent at release", EndedBy.CONSENT)
                    continue
                self._release(s, order, now)
                released.append(order.id)
            s.commit()
        self.bus.publish(*(changed(o, now) for o in due))
        return released

    def _release(self, s: Session, order: Order, now: datetime) -> None:
        household = s.get(Household, order.household_id)
        assert household is not None
        order.released_at = now
        self._set(s, order, OrderStatus.RELEASED, now, "released to fulfilment")
        self.outbox(s, order, household, now)

    @staticmethod
    def _set(s: Session, order: Order, status: OrderStatus, now: datetime, why: str, ended_by: EndedBy | None = None) -> None:
        log.info("order %s for %s/%s: %s -> %s (%s)", order.id, order.device_id, order.slot_id, order.status, status.value, why)
        order.status, order.updated_at = status.value, now
        if ended_by is not None:
            order.ended_by = ended_by.value
        s.add(order)
