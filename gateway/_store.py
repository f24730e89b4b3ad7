"""The gateway's storage adapter: device registry, readings, forecasts and dead letters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ._ingest_sql import BatchSql
from ._messages import Birth, SlotSpec, Telemetry
from ._models import GwDeadLetter, GwDevice, GwForecast, GwReading, GwSlot
from ._normalise import corrected_time, estimate_clock_offset, is_refill, normalise_level, relaxed_clock_offset

__all__ = ["GatewayStore", "IngestCounts", "TelemetryIn"]

_PAYLOAD_KEPT = 4096  # bytes of a rejected payload kept for the operator


@dataclass(frozen=True, slots=True)
class TelemetryIn:
    """A parsed telemetry message and when it reached us."""

    device_id: str
    telemetry: Telemetry
    received_at: datetime


@dataclass(slots=True)
class IngestCounts:
    """What one batch of telemetry did."""

    stored: int = 0
    duplicates: int = 0
    not_consented: int = 0
    unknown: int = 0  # sentinel or missing values
    rejected: int = 0


_DEV: sa.Table = GwDevice.__table__  # type: ignore[attr-defined]
_SLOT: sa.Table = GwSlot.__table__  # type: ignore[attr-defined]
_READING: sa.Table = GwReading.__table__  # type: ignore[attr-defined]
_DEV_COLS = ("device_id", "store_readings", "last_seen_at", "clock_offset_s", "clock_offset_at")
_SLOT_COLS = ("device_id", "slot_id", "consumable", "unit", "capacity", "fills_up", "level", "level_at", "segment_start")
_READING_COLS = ("device_id", "slot_id", "seq", "ts", "device_ts", "level", "received_at")
# A device row is rewritten when it is seen after this long, or when its clock estimate moves by
# more than a second; in between, the stored (offset, time) relaxes to the same estimate.
_SEEN_EVERY_S = 60.0
_OFFSET_SLACK_S = 1.0


class _DeviceState:
    """One device's row during a batch: when it was seen, and its learnt clock offset."""

    __slots__ = ("changed", "clock_offset_at", "clock_offset_s", "device_id", "last_seen_at", "store_readings")

    def __init__(self, device_id: str, store_readings: bool, last_seen_at: datetime | None, offset: float | None, offset_at: datetime | None) -> None:
        self.device_id, self.store_readings, self.last_seen_at = device_id, bool(store_readings), last_seen_at
        self.clock_offset_s, self.clock_offset_at = offset, offset_at
        self.changed = False

    def observe(self, device_ts: datetime, received_at: datetime) -> datetime:
        """Learn from one message; returns its time on the gateway's clock."""
        observed = (received_at - device_ts).total_seconds()
        previous, previous_at = self.clock_offset_s, self.clock_offset_at
        estimate = estimate_clock_offset(previous, previous_at, observed, received_at)
        # Unbound by this message, the stored pair already relaxes to the same estimate later on.
        if previous is None or previous_at is None or abs(estimate - relaxed_clock_offset(previous, previous_at, received_at)) > _OFFSET_SLACK_S:
            self.clock_offset_s, self.clock_offset_at, self.changed = estimate, received_at, True
        if self.last_seen_at is None or (received_at - self.last_seen_at).total_seconds() >= _SEEN_EVERY_S:
            self.last_seen_at, self.changed = received_at, True
        return corrected_time(device_ts, estimate, received_at)

    def row(self, sql: BatchSql) -> tuple[Any, ...]:
        """Key then the columns after `store_readings`, as the backend stores them."""
        return (self.device_id, sql.to_db(self.last_seen_at), self.clock_offset_s, sql.to_db(self.clock_offset_at))


class _SlotState:
    """One slot's row during a batch: the last level and the start of its segment (the last refill)."""

    __slots__ = ("device_id", "dirty", "level", "level_at", "segment_start", "slot_id", "spec")

    def __init__(self, r: tuple[Any, ...], sql: BatchSql) -> None:
        self.device_id, self.slot_id = r[0], r[1]
        self.spec = SlotSpec(r[1], r[2], r[3], r[4], bool(r[5]))
        self.level, self.level_at, self.segment_start = r[6], sql.from_db(r[7]), sql.from_db(r[8])
        self.dirty = False

    def observe(self, level: float, ts: datetime, replaced: bool) -> None:
        """A new reading: a refill starts a segment; the latest reading (by time) is the level."""
        if (replaced or is_refill(self.level, self.level_at, level, ts)) and (self.segment_start is None or ts > self.segment_start):
            self.segment_start = ts
        if self.level_at is None or ts >= self.level_at:
            self.level, self.level_at = level, ts
        self.dirty = True

    def row(self, sql: BatchSql) -> tuple[Any, ...]:
        """Key then level, level_at, segment_start, as the backend stores them."""
        return (self.device_id, self.slot_id, self.level, sql.to_db(self.level_at), sql.to_db(self.segment_start))


class GatewayStore:
    """Reads and writes the gateway's tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_birth(self, device_id: str, birth: Birth, now: datetime) -> None:
        """Create or update a device and its slots from its birth message; keeps slot state."""
        with Session(self.engine) as s:
            device = s.get(GwDevice, device_id) or GwDevice(device_id=device_id)
            device.model, device.kind, device.firmware = birth.model, birth.kind, birth.firmware
            device.birth_at = device.last_seen_at = now
            s.add(device)
            for spec in birth.slots:
                slot = s.get(GwSlot, (device_id, spec.slot_id)) or GwSlot(
                    device_id=device_id, slot_id=spec.slot_id, consumable=spec.consumable, unit=spec.unit, capacity=spec.capacity
                )
                slot.consumable, slot.unit, slot.capacity, slot.fills_up = spec.consumable, spec.unit, spec.capacity, spec.fills_up
                s.add(slot)
            s.commit()

    def record_status(self, device_id: str, online: bool, now: datetime) -> None:
        """Remember whether a device is online."""
        with Session(self.engine) as s:
            device = s.get(GwDevice, device_id)
            if device is None:
                return
            device.online, device.last_seen_at = online, now
            s.add(device)
            s.commit()

    def register_device(self, device_id: str) -> None:
        """Make sure the registry knows a device, before or after its first birth message."""
        with Session(self.engine) as s:
            if s.get(GwDevice, device_id) is None:
                s.add(GwDevice(device_id=device_id))
                s.commit()

    def set_store_readings(self, device_id: str, allowed: bool) -> None:
        """Switch storage of a device's readings on or off (the household's telemetry consent)."""
        with Session(self.engine) as s:
            device = s.get(GwDevice, device_id) or GwDevice(device_id=device_id)
            device.store_readings = allowed
            s.add(device)
            s.commit()

    def dead_letter(self, topic: str, payload: bytes, reason: str, detail: str, now: datetime) -> None:
        """Keep a rejected message with its reason."""
        with Session(self.engine) as s:
            s.add(
                GwDeadLetter(
                    received_at=now,
                    topic=topic[:256],
                    reason=reason[:64],
                    detail=detail[:512],
                    payload=payload[:_PAYLOAD_KEPT].decode("utf-8", "replace"),
                )
            )
            s.commit()

    def store_telemetry(self, batch: Sequence[TelemetryIn]) -> IngestCounts:
        """Normalise and store a batch of telemetry in one transaction; duplicates are ignored."""
        counts = IngestCounts()
        if not batch:
            return counts
        device_ids = sorted({m.device_id for m in batch})
        with self.engine.begin() as conn:
            sql = BatchSql(conn)
            # Workers on a shared subscription get one device's messages in turn: the device rows
            # are locked (in id order, so two batches cannot deadlock) so that the second batch
            # builds on the first one's slot levels and clock offset instead of overwriting them.
            devices = {r[0]: _DeviceState(r[0], r[1], sql.from_db(r[2]), r[3], sql.from_db(r[4])) for r in sql.select_in(_DEV, _DEV_COLS, "device_id", device_ids, lock=True)}
            slots = {(r[0], r[1]): _SlotState(r, sql) for r in sql.select_in(_SLOT, _SLOT_COLS, "device_id", device_ids)}
            readings: list[tuple[Any, ...]] = []
            for msg in sorted(batch, key=lambda m: m.telemetry.ts):
                device = devices.get(msg.device_id)
                if device is None or not device.store_readings:
                    counts.not_consented += 1
                    continue
                device_ts = msg.telemetry.ts
                ts = device.observe(device_ts, msg.received_at)
                replaced = {e.slot_id for e in msg.telemetry.events if e.kind == "replaced"}
                ts_db, device_ts_db, received_db = sql.to_db(ts), sql.to_db(device_ts), sql.to_db(msg.received_at)
                for slot_id, raw in msg.telemetry.levels.items():
                    slot = slots.get((msg.device_id, slot_id))
                    if slot is None:
                        counts.rejected += 1
                        continue
                    level = normalise_level(raw, slot.spec)
                    if level is None:
                        counts.unknown += 1
                        continue
                    slot.observe(level, ts, slot_id in replaced)
                    readings.append((msg.device_id, slot_id, msg.telemetry.seq, ts_db, device_ts_db, level, received_db))
            sql.update(_DEV, ["device_id"], _DEV_COLS[2:], [d.row(sql) for d in devices.values() if d.changed])
            sql.update(_SLOT, ["device_id", "slot_id"], ["level", "level_at", "segment_start"], [sl.row(sql) for sl in slots.values() if sl.dirty], dirty=True)
            inserted = sql.insert_ignore(_READING, _READING_COLS, readings)
            counts.stored, counts.duplicates = inserted, len(readings) - inserted
        return counts

    def dirty_slots(self, limit: int) -> list[GwSlot]:
        """Slots whose readings changed since their last forecast."""
        with Session(self.engine) as s:
            return list(s.exec(select(GwSlot).where(GwSlot.dirty == True).limit(limit)))  # noqa: E712

    def readings_since(self, keys: Iterable[tuple[str, str, datetime | None]]) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        """Readings of each (device, slot) from its segment start on, ordered by time."""
        out: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        keys = list(keys)
        if not keys:
            return out
        r = GwReading.__table__.c  # type: ignore[attr-defined]
        conds = [
            sa.and_(r.device_id == d, r.slot_id == sl, *( [r.ts >= start] if start is not None else [] ))
            for d, sl, start in keys
        ]
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(r.device_id, r.slot_id, r.ts, r.level).where(sa.or_(*conds)).order_by(r.ts)):
                out.setdefault((row.device_id, row.slot_id), []).append((row.ts, row.level))
        return out

    def write_forecasts(self, forecasts: Sequence[GwForecast], cleared: Sequence[tuple[str, str]]) -> None:
        """Upsert forecasts and clear the dirty flag of the slots they cover."""
        with Session(self.engine) as s:
            for f in forecasts:
                s.merge(f)
            for device_id, slot_id in cleared:
                slot = s.get(GwSlot, (device_id, slot_id))
                if slot is not None:
                    slot.dirty = False
                    s.add(slot)
            s.commit()

    def devices(self, device_ids: Iterable[str] | None = None) -> list[GwDevice]:
        """Devices, all or the given ones."""
        with Session(self.engine) as s:
            q = select(GwDevice)
            if device_ids is not None:
                q = q.where(GwDevice.device_id.in_(list(device_ids)))  # type: ignore[attr-defined]
            return list(s.exec(q.order_by(GwDevice.device_id)))

    def slots(self, device_ids: Iterable[str]) -> list[GwSlot]:
        """Slots of the given devices."""
        with Session(self.engine) as s:
            q = select(GwSlot).where(GwSlot.device_id.in_(list(device_ids)))  # type: ignore[attr-defined]
            return list(s.exec(q.order_by(GwSlot.device_id, GwSlot.slot_id)))

    def forecasts(self, device_ids: Iterable[str]) -> dict[tuple[str, str], GwForecast]:
        """Latest forecasts of the given devices' slots."""
        with Session(self.engine) as s:
            q = select(GwForecast).where(GwForecast.device_id.in_(list(device_ids)))  # type: ignore[attr-defined]
            return {(f.device_id, f.slot_id): f for f in s.exec(q)}

    def history(self, device_id: str, slot_id: str, since: datetime) -> list[tuple[datetime, float]]:
        """Stored levels of one slot since a time."""
        return self.readings_since([(device_id, slot_id, since)]).get((device_id, slot_id), [])

    def dead_letters(self, limit: int = 100) -> list[GwDeadLetter]:
        """The most recent rejected messages."""
        with Session(self.engine) as s:
            return list(s.exec(select(GwDeadLetter).order_by(GwDeadLetter.id.desc()).limit(limit)))  # type: ignore[union-attr]
