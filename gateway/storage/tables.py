"""Tables the gateway owns: devices, slots, readings (and their daily aggregates), forecasts, dead letters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from .engine import UTCDateTime

__all__ = ["GwCredential", "GwCursor", "GwDailyLevel", "GwDeadLetter", "GwDevice", "GwForecast", "GwReading", "GwSlot"]


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class GwDevice(SQLModel, table=True):
    """A device as the gateway knows it."""

    __tablename__ = "gw_devices"

    device_id: str = Field(primary_key=True, max_length=64)
    model: str | None = Field(default=None, max_length=128)
    kind: str | None = Field(default=None, max_length=64)
    firmware: str | None = Field(default=None, max_length=64)
    online: bool = False
    # Set by the household's `telemetry` consent (SPEC 4): without it no reading is stored.
    store_readings: bool = False
    birth_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()
    # Estimated (gateway time - device time) in seconds, and when it was last updated; see gateway.readings.clock_skew.
    clock_offset_s: float | None = None
    clock_offset_at: datetime | None = _ts()
    # The boot identity of the device's latest birth (None: it sent none): telemetry without one of its own takes it.
    boot: str | None = Field(default=None, max_length=64)


class GwSlot(SQLModel, table=True):
    """One consumable slot of a device: what the birth said, and the state folded from its readings (`settle`)."""

    __tablename__ = "gw_slots"

    device_id: str = Field(primary_key=True, foreign_key="gw_devices.device_id", max_length=64)
    slot_id: str = Field(primary_key=True, max_length=32)
    consumable: str = Field(max_length=64)
    unit: str = Field(max_length=16)
    capacity: float
    fills_up: bool = False
    level: float | None = None  # last fraction remaining (headroom for receptacles)
    level_at: datetime | None = _ts()
    segment_start: datetime | None = _ts()  # the last refill seen
    dirty: bool = Field(default=False, index=True)  # readings arrived since the last forecast


class GwReading(SQLModel, table=True):
    """One stored level: fraction remaining of capacity, at the device's time."""

    __tablename__ = "gw_readings"
    __table_args__ = (
        # SPEC 3: each reading is stored at most once, even under QoS 1 redelivery. The key uses the
        # device's own timestamp: a redelivered message carries it unchanged, while the skew-corrected
        # `ts` may move as the gateway learns the device's clock. A reboot resets `seq`, and may reset
        # the clock to the same epoch: the boot identity tells such boots' readings apart.
        sa.UniqueConstraint("device_id", "slot_id", "boot", "seq", "device_ts", name="uq_gw_readings_once"),
        sa.Index("ix_gw_readings_slot_ts", "device_id", "slot_id", "ts"),
    )

    id: int | None = Field(default=None, sa_column=Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True))
    device_id: str = Field(max_length=64)
    slot_id: str = Field(max_length=32)
    # The message's `boot`, else that of the device's latest birth, else '' (docs/protocol.md, "At most once").
    boot: str = Field(default="", sa_column=Column(sa.String(64), nullable=False, server_default=""))
    seq: int = Field(sa_column=Column(sa.BigInteger, nullable=False))
    ts: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))  # device time corrected for clock skew
    device_ts: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))  # as the device said
    level: float
    # The device said the consumable was replaced (a refill even when the level did not jump).
    replaced: bool = Field(default=False, sa_column=Column(sa.Boolean, nullable=False, server_default=sa.false()))
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class GwDailyLevel(SQLModel, table=True):
    """One slot's readings of one UTC day, reduced to a summary once older than REPLENISH_RETENTION_DAYS (SPEC 4, `Retention`)."""

    __tablename__ = "gw_daily_levels"

    device_id: str = Field(primary_key=True, max_length=64)
    slot_id: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)  # the readings' `ts`, in UTC
    readings: int  # how many were reduced into this row
    level_min: float
    level_max: float
    level_mean: float
    first_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    first_level: float
    last_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_level: float
    replaced: bool = False  # a `replaced` event among them


class GwCursor(SQLModel, table=True):
    """How far a background step has read an append-only table, by row id (e.g. `settle` over gw_readings)."""

    __tablename__ = "gw_cursors"

    name: str = Field(primary_key=True, max_length=32)
    position: int = Field(sa_column=Column(sa.BigInteger, nullable=False))


class GwForecast(SQLModel, table=True):
    """The latest forecast of a slot."""

    __tablename__ = "gw_forecasts"

    device_id: str = Field(primary_key=True, max_length=64)
    slot_id: str = Field(primary_key=True, max_length=32)
    computed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    level_now: float | None = None
    rate_per_day: float | None = None
    empty_p10: datetime | None = _ts()
    empty_p50: datetime | None = _ts()
    empty_p90: datetime | None = _ts()
    confidence: float = 0.0
    n_used: int = 0
    explanation: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class GwCredential(SQLModel, table=True):
    """A device's MQTT password, hashed; the embedded broker checks connections against it."""

    __tablename__ = "gw_credentials"

    username: str = Field(primary_key=True, max_length=64)  # the device id
    secret_hash: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class GwDeadLetter(SQLModel, table=True):
    """A rejected device message, kept with its reason so an operator can see it (`DeadLetters`)."""

    __tablename__ = "gw_dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    # Text columns hold only what every database takes: unsafe characters are written as escapes.
    topic: str = Field(max_length=256)
    reason: str = Field(max_length=64, index=True)
    detail: str = Field(max_length=512)
    # The payload's first bytes exactly as they arrived (a NUL, invalid UTF-8: the poison itself).
    payload: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    payload_size: int | None = None  # the whole payload's length in bytes; None for rows kept before revision 0005
