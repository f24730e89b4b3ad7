"""The gateway's storage adapter: device registry, readings, forecasts and dead letters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ._db import insert_ignore
from ._ingest_sql import insert_ignoring_duplicates, update_by_key
from ._messages import Birth, SlotSpec, Telemetry
from ._models import GwDeadLetter, GwDevice, GwForecast, GwReading, GwSlot
from ._normalise import corrected_time, estimate_clock_offset, is_refill, normalise_level

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
        rows: list[dict[str, Any]] = []
        dev_t, slot_t = GwDevice.__table__, GwSlot.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            # Plain records instead of ORM objects: building thousands of SQLModel instances per
            # batch cost more than everything else in ingest (docs/benchmarks.md, "Ingest").
            q = sa.select(dev_t.c.device_id, dev_t.c.store_readings, dev_t.c.last_seen_at, dev_t.c.clock_offset_s, dev_t.c.clock_offset_at)
            q = q.where(dev_t.c.device_id.in_(device_ids)).order_by(dev_t.c.device_id)
            if conn.dialect.name == "postgresql":
                # Workers on a shared subscription get one device's messages in turn: lock its row
                # (in id order, so two batches cannot deadlock) so the second batch builds on the
                # first one's slot levels and clock offset instead of overwriting them.
                q = q.with_for_update()
            devices = {r.device_id: SimpleNamespace(**r._mapping) for r in conn.execute(q)}
            slots = {
                (r.device_id, r.slot_id): SimpleNamespace(**{**r._mapping, "dirty": False})  # dirty: touched by this batch
                for r in conn.execute(sa.select(slot_t).where(slot_t.c.device_id.in_(device_ids)).order_by(slot_t.c.device_id, slot_t.c.slot_id))
            }
            for msg in sorted(batch, key=lambda m: m.telemetry.ts):
                device = devices.get(msg.device_id)
                if device is None or not device.store_readings:
                    counts.not_consented += 1
                    continue
                device.last_seen_at = max(filter(None, (device.last_seen_at, msg.received_at)))
                device_ts = msg.telemetry.ts
                observed = (msg.received_at - device_ts).total_seconds()
                device.clock_offset_s = estimate_clock_offset(device.clock_offset_s, device.clock_offset_at, observed, msg.received_at)
                device.clock_offset_at = msg.received_at
                ts = corrected_time(device_ts, device.clock_offset_s, msg.received_at)
                replaced = {e.slot_id: e for e in msg.telemetry.events if e.kind == "replaced"}
                for slot_id, raw in msg.telemetry.levels.items():
                    slot = slots.get((msg.device_id, slot_id))
                    if slot is None:
                        counts.rejected += 1
                        continue
                    spec = SlotSpec(slot.slot_id, slot.consumable, slot.unit, slot.capacity, slot.fills_up)  # type: ignore[arg-type]
                    level = normalise_level(raw, spec)
                    if level is None:
                        counts.unknown += 1
                        continue
                    if slot_id in replaced or is_refill(slot.level, slot.level_at, level, ts):
                        if slot.segment_start is None or ts > slot.segment_start:
                            slot.segment_start = ts
                    if slot.level_at is None or ts >= slot.level_at:
                        slot.level, slot.level_at = level, ts
                    slot.dirty = True
                    rows.append(
                        {
                            "device_id": msg.device_id,
                            "slot_id": slot_id,
                            "seq": msg.telemetry.seq,
                            "ts": ts,
                            "device_ts": device_ts,
                            "level": level,
                            "received_at": msg.received_at,
                        }
                    )
            update_by_key(
                conn,
                dev_t,
                ["device_id"],
                [
                    {"device_id": d.device_id, "last_seen_at": d.last_seen_at, "clock_offset_s": d.clock_offset_s, "clock_offset_at": d.clock_offset_at}
                    for d in devices.values()
                    if d.store_readings
                ],
            )
            update_by_key(
                conn,
                slot_t,
                ["device_id", "slot_id"],
                [
                    {"device_id": sl.device_id, "slot_id": sl.slot_id, "level": sl.level, "level_at": sl.level_at, "segment_start": sl.segment_start}
                    for sl in slots.values()
                    if sl.dirty
                ],
                dirty=True,
            )
            inserted = insert_ignoring_duplicates(conn, GwReading.__table__, rows)  # type: ignore[attr-defined]
            counts.stored, counts.duplicates = inserted, len(rows) - inserted
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
