"""Consent per device and scope (SPEC 4): explicit grants, an audit record of each, withdrawal at once.

The rule of which consent is in force is pure (`in_force`): the latest record per (device, scope)
wins, and none means not given. `Consents` records grants and withdrawals, tells the gateway at
once whether to store readings (`telemetry`), and publishes each change on the message bus
(`replenish.events.ConsentChanged`): ordering cancels the orders still waiting in their cancel
window or for approval when `auto_order` goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gateway import Clock, GatewayStorage

from ..events import ConsentChanged, MessageBus
from ..storage import ConsentRecord
from .accounts import Households

__all__ = ["CONSENT_WORDING", "CONSENT_WORDING_VERSION", "ConsentScope", "Consents", "in_force"]

CONSENT_WORDING_VERSION = "2026-12-v2"  # bump whenever CONSENT_WORDING changes: each record keeps the words it was given with


class ConsentScope(StrEnum):
    """The separate grants a household gives per device."""

    TELEMETRY = "telemetry"  # we may store its levels
    AUTO_ORDER = "auto_order"  # we may place orders


# What the household agrees to (or withdraws), word for word, as the page shows it and each record keeps it.
CONSENT_WORDING: dict[ConsentScope, str] = {
    ConsentScope.TELEMETRY: (
        "Store this device's consumable levels and whether it is online, to forecast when each runs out. "
        "Nothing about what is printed, eaten or drunk is collected. Raw readings are kept for a limited time, "
        "then reduced to daily figures. Withdrawing stops the storing at once."
    ),
    ConsentScope.AUTO_ORDER: (
        "Place orders for this device's consumables on this household's behalf: with the product, quantity and mode "
        "chosen for each slot, held for the cancel window or waiting for approval, and never above the monthly budget "
        "without approval. Withdrawing cancels every order of this device not yet sent to the shop."
    ),
}


def in_force(records: Iterable[tuple[str, str, bool]]) -> dict[tuple[str, ConsentScope], bool]:
    """The consent in force per (device, scope), from (device, scope, granted) records oldest first."""
    out: dict[tuple[str, ConsentScope], bool] = {}
    for device_id, scope, granted in records:
        out[(device_id, ConsentScope(scope))] = granted
    return out


class Consents:
    """Records grants and withdrawals, and answers which consent is in force."""

    def __init__(
        self,
        engine: Engine,
        households: Households,
        gateway: GatewayStorage,
        clock: Clock,
        bus: MessageBus,
    ) -> None:
        self.engine = engine
        self.households = households
        self.gateway = gateway
        self.clock = clock
        self.bus = bus

    def set(self, household_id: int, device_id: str, scope: ConsentScope | str, granted: bool, actor: str) -> datetime:
        """Grant or withdraw one scope; records who, when and the wording's version and words; applies at once."""
        try:
            scope = ConsentScope(scope)
        except ValueError:
            raise ValueError(f"unknown consent scope {scope!r}") from None
        if self.households.owner(device_id) != household_id:
            raise PermissionError(f"device {device_id} is not this household's")
        now = self.clock.now()
        with Session(self.engine) as s:
            s.add(
                ConsentRecord(
                    household_id=household_id,
                    device_id=device_id,
                    scope=scope.value,
                    granted=granted,
                    actor=actor,
                    wording_version=CONSENT_WORDING_VERSION,
                    wording_text=CONSENT_WORDING[scope],
                    at=now,
                )
            )
            s.commit()
        if scope is ConsentScope.TELEMETRY:  # the consent's own effect, not a handler's: it must not be skipped
            self.gateway.registry.set_store_readings(device_id, granted)
        self.bus.publish(ConsentChanged(household_id, device_id, scope.value, granted, now))
        return now

    def in_force(self, device_ids: list[str]) -> dict[tuple[str, ConsentScope], bool]:
        """The consent in force per (device, scope) of these devices."""
        if not device_ids:
            return {}
        with Session(self.engine) as s:
            q = select(ConsentRecord.device_id, ConsentRecord.scope, ConsentRecord.granted)
            q = q.where(col(ConsentRecord.device_id).in_(device_ids)).order_by(col(ConsentRecord.id))
            return in_force(s.exec(q).all())

    def auto_order(self, device_ids: list[str]) -> dict[str, bool]:
        """Per device, whether its `auto_order` consent is in force."""
        return {d: g for (d, scope), g in self.in_force(device_ids).items() if scope is ConsentScope.AUTO_ORDER}

    def history(self, household_id: int) -> list[ConsentRecord]:
        """Every grant and withdrawal of a household, oldest first."""
        with Session(self.engine) as s:
            q = select(ConsentRecord).where(ConsentRecord.household_id == household_id).order_by(col(ConsentRecord.id))
            return list(s.exec(q))
