"""Tables the replenishment service owns: households, consent, calendars, catalog, orders, outbox."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from gateway import UTCDateTime

__all__ = [
    "AwayRange",
    "Claim",
    "ConsentRecord",
    "Fulfiller",
    "Household",
    "HouseholdCalendar",
    "Order",
    "OrderEvent",
    "OutboxMessage",
    "Product",
    "ProvisionedDevice",
    "SlotSetting",
]


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Household(SQLModel, table=True):
    """A customer account."""

    __tablename__ = "households"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, sa_column_kwargs={"unique": True})
    name: str = Field(max_length=128)
    password_hash: str = Field(max_length=256)
    pseudonym: str = Field(max_length=64, sa_column_kwargs={"unique": True})  # what fulfilment sees
    monthly_budget_cents: int = 5000
    currency: str = Field(default="EUR", max_length=3)
    cancel_window_hours: float | None = None  # how long an `auto` order is held; None: the service's REPLENISH_CANCEL_WINDOW_HOURS
    address: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timezone: str = Field(default="Europe/Berlin", max_length=64)  # IANA name: where all-day and floating calendar times are
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ProvisionedDevice(SQLModel, table=True):
    """A device we issued credentials for; its claim code is printed on it and stored only hashed."""

    __tablename__ = "provisioned_devices"

    device_id: str = Field(primary_key=True, foreign_key="gw_devices.device_id", max_length=64)
    claim_code_hash: str = Field(max_length=128)
    provisioned_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Claim(SQLModel, table=True):
    """Which household owns a device."""

    __tablename__ = "claims"

    device_id: str = Field(primary_key=True, foreign_key="gw_devices.device_id", max_length=64)
    household_id: int = Field(foreign_key="households.id", index=True)
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ConsentRecord(SQLModel, table=True):
    """An audit record of one grant or withdrawal; the latest per (device, scope) is in force."""

    __tablename__ = "consent_records"

    id: int | None = Field(default=None, primary_key=True)
    household_id: int = Field(foreign_key="households.id", index=True)
    device_id: str = Field(max_length=64, index=True)
    scope: str = Field(max_length=16)  # telemetry | auto_order
    granted: bool
    actor: str = Field(max_length=254)
    wording_version: str = Field(max_length=32)
    wording_text: str = Field(sa_column=Column(sa.Text, nullable=False))  # the words the household agreed to or withdrew
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class HouseholdCalendar(SQLModel, table=True):
    """One of a household's calendars of time away: typed ranges, an uploaded .ics, or an .ics feed."""

    __tablename__ = "household_calendars"

    id: int | None = Field(default=None, primary_key=True)
    household_id: int = Field(foreign_key="households.id", index=True)
    kind: str = Field(max_length=8)  # typed | upload | feed
    name: str = Field(max_length=80)
    whole: bool = True  # every event means away; else only those matching `words`
    words: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    url: str | None = Field(default=None, max_length=2048)  # a feed's
    etag: str | None = Field(default=None, max_length=256)
    last_modified: str | None = Field(default=None, max_length=64)
    body: bytes | None = Field(default=None, sa_column=Column(sa.LargeBinary(), nullable=True))  # the last good copy
    fetched_at: datetime | None = _ts()  # the last good copy's time (an upload's, or a feed's 200 or 304)
    checked_at: datetime | None = _ts(index=True)  # a feed's last attempt, good or not
    error: str | None = Field(default=None, max_length=512)  # why the last attempt failed; None when it did not
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AwayRange(SQLModel, table=True):
    """A typed range of whole days away (first and last day inclusive, in the household's zone)."""

    __tablename__ = "away_ranges"

    id: int | None = Field(default=None, primary_key=True)
    calendar_id: int = Field(foreign_key="household_calendars.id", index=True)
    household_id: int = Field(foreign_key="households.id", index=True)
    first_day: date
    last_day: date
    note: str = Field(default="", max_length=120)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Product(SQLModel, table=True):
    """A catalog item that fits some device models' slots."""

    __tablename__ = "products"

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    consumable: str = Field(max_length=64, index=True)
    models: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The slots it fits on those models; empty: every slot holding its consumable (docs/catalog.md).
    slots: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    unit_price_cents: int  # minor units of `currency` (yen for JPY, fils for KWD), whatever the name says
    currency: str = Field(default="EUR", max_length=3)
    fulfiller_id: str = Field(foreign_key="fulfillers.id", max_length=64)
    unit: str | None = Field(default=None, max_length=16)  # the slot's unit: percent | ml | g | count
    pack_size: float | None = None  # in `unit`: a 1 L carton of milk is 1030 g; a cartridge is 100 percent
    # Release to delivery in days, 10/50/90 % quantiles; none: the fulfilment system's lead_time_days.
    lead_p10_days: float | None = None
    lead_p50_days: float | None = None
    lead_p90_days: float | None = None


class SlotSetting(SQLModel, table=True):
    """A household's choices for one slot."""

    __tablename__ = "slot_settings"

    device_id: str = Field(primary_key=True, max_length=64)
    slot_id: str = Field(primary_key=True, max_length=32)
    household_id: int = Field(foreign_key="households.id", index=True)
    sku: str = Field(foreign_key="products.sku", max_length=64)
    quantity: int = 1  # packs an order carries (order-up-to: the packs from empty to `target_level`)
    mode: str = Field(default="auto", max_length=16)  # auto | approve | notify
    # The household's "not now" (ordering.needs.NotNow): no order before this, unless the level falls to `not_above_level`.
    not_before: datetime | None = _ts()
    not_above_level: float | None = None
    # Order-up-to target in the slot's unit; none: `quantity` packs an order.
    target_level: float | None = None
    # SKUs to order instead, best first, when the chosen one is out of stock (SPEC 4).
    substitutes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))


class Fulfiller(SQLModel, table=True):
    """A fulfilment system: where orders go and how it authenticates back."""

    __tablename__ = "fulfillers"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    webhook_url: str = Field(max_length=512)
    webhook_secret: str = Field(max_length=128)  # whsec_<base64>, per Standard Webhooks
    api_key_hash: str = Field(max_length=128, index=True)  # sha256 hex of the API key
    lead_time_days: float = 4.0
    sandbox: bool = False


# The open statuses (ordering.status.OPEN), spelt out for the partial index: storage imports no ordering.
OPEN_ORDER_SQL = "status IN ('awaiting_approval', 'held', 'released', 'accepted', 'shipped')"


class Order(SQLModel, table=True):
    """One order for one need of one slot."""

    __tablename__ = "orders"
    # One open order per slot, whichever process places it (SPEC 2: no duplicate parcels).
    __table_args__ = (
        sa.Index(
            "uq_orders_one_open_per_slot",
            "device_id",
            "slot_id",
            unique=True,
            postgresql_where=sa.text(OPEN_ORDER_SQL),
            sqlite_where=sa.text(OPEN_ORDER_SQL),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    # SPEC 5: never two orders for one need; the key names the need and the attempt (ordering.needs).
    idempotency_key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    need: str = Field(max_length=200, index=True)  # the slot's refill segment this order is for
    household_id: int = Field(foreign_key="households.id", index=True)
    device_id: str = Field(max_length=64, index=True)
    slot_id: str = Field(max_length=32)
    fulfiller_id: str = Field(foreign_key="fulfillers.id", max_length=64, index=True)
    sku: str = Field(max_length=64)
    quantity: int
    unit_price_cents: int
    currency: str = Field(max_length=3)
    status: str = Field(max_length=24, index=True)
    reason: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    release_at: datetime | None = _ts(index=True)
    released_at: datetime | None = _ts()
    expected_delivery: datetime | None = _ts()
    tracking: str | None = Field(default=None, max_length=128)
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_by: str | None = Field(default=None, max_length=16)  # ordering.needs.EndedBy, for an order that ended unmet


class OrderEvent(SQLModel, table=True):
    """A fulfilment event as received; the unique key makes redelivery harmless."""

    __tablename__ = "order_events"
    __table_args__ = (sa.UniqueConstraint("order_id", "event_id", name="uq_order_events_once"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", max_length=36, index=True)
    event_id: str = Field(max_length=128)
    type: str = Field(max_length=24)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class OutboxMessage(SQLModel, table=True):
    """A webhook to deliver, written in the same transaction as the order change it announces."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    order_id: str = Field(foreign_key="orders.id", max_length=36, index=True)
    fulfiller_id: str = Field(foreign_key="fulfillers.id", max_length=64)
    event_type: str = Field(max_length=48)
    payload: str = Field(sa_column=Column(sa.Text, nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    sent_at: datetime | None = _ts(index=True)
    failed_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
