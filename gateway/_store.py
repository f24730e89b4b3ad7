"""The gateway's storage adapter: device registry, readings, forecasts and dead letters."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ._ingest_sql import BatchSql, IngestCounts, db_time, py_time
from ._messages import Birth, Telemetry
from ._models import GwDeadLetter, GwDevice, GwForecast, GwReading, GwSlot
from ._normalise import corrected_time, estimate_clock_offset, is_refill, relaxed_clock_offset

log = logging.getLogger(__name__)

__all__ = ["GatewayStore", "IngestCounts", "PreparedTelemetry", "TelemetryIn"]

_PAYLOAD_KEPT = 4096  # bytes of a rejected payload kept for the operator


@dataclass(frozen=True, slots=True)
class TelemetryIn:
    """A parsed telemetry message and when it reached us."""

    device_id: str
    telemetry: Telemetry
    received_at: datetime


_DEV: sa.Table = GwDevice.__table__  # type: ignore[attr-defined]
_SLOT: sa.Table = GwSlot.__table__  # type: ignore[attr-defined]
_DEV_COLS = ("device_id", "last_seen_at", "clock_offset_s", "clock_offset_at")
_SLOT_STATE_COLS = ("device_id", "slot_id", "level", "level_at", "segment_start")
_CHECKPOINT_EVERY_S = 0.5  # SQLite: the background checkpoint's pace while ingest writes
_CHECKPOINT_IDLE_S = 10.0  # and how long it waits for more before its thread ends
_CLOCK_CACHE = 200_000  # devices whose clock a worker remembers; past that it starts afresh
# The transactions other than ours that hold a write lock on gw_readings, by transaction id.
_WRITERS = (
    "SELECT DISTINCT t.transactionid FROM pg_locks AS r JOIN pg_locks AS t ON t.virtualtransaction = r.virtualtransaction "
    "AND t.locktype = 'transactionid' WHERE r.locktype = 'relation' AND r.relation = 'gw_readings'::regclass "
    "AND r.mode = 'RowExclusiveLock' AND r.pid <> pg_backend_pid()"
)
# A device row is rewritten when it is seen after this long, or when its clock estimate moves by
# more than a second; in between, the stored (offset, time) relaxes to the same estimate.
_SEEN_EVERY_S = 60.0
_OFFSET_SLACK_S = 1.0


@dataclass(frozen=True, slots=True)
class PreparedTelemetry:
    """A batch of telemetry ready for the database (`GatewayStore.prepare_telemetry`)."""

    payload: Any  # the stage rows as BatchSql.stage_payload lays them out for the backend
    rows: int
    devices: list[tuple[Any, ...]]  # device rows whose clock estimate is due a rewrite


class _Checkpointer:
    """Copies SQLite's WAL back into the database file on a thread of its own, beside ingest's commits.

    Left to the writers (`wal_autocheckpoint`), every few batches one commit also wrote tens of
    MB back to the database file and synced it, a third of a batch's time once the table holds
    a few hundred thousand readings. The thread runs while writes come (`poke`) and ends after
    a quiet spell; the connections' own `wal_autocheckpoint` stays as the safety net.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        self._wake.set()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        raw = self.engine.raw_connection()
        try:
            while self._wake.wait(_CHECKPOINT_IDLE_S):
                self._wake.clear()
                cur = raw.cursor()
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks a writer or a reader
                cur.close()
                time.sleep(_CHECKPOINT_EVERY_S)
        except Exception:  # noqa: BLE001 - the writers' own checkpoints still run
            log.exception("background WAL checkpoint failed")
        finally:
            raw.close()


class _DeviceClock:
    """What a worker knows of one device's clock: its learnt offset, and what the database holds."""

    __slots__ = ("clock_offset_at", "clock_offset_s", "last_seen_at", "stored")

    def __init__(self, last_seen_at: datetime | None, offset: float | None, offset_at: datetime | None) -> None:
        self.last_seen_at, self.clock_offset_s, self.clock_offset_at = last_seen_at, offset, offset_at
        self.stored: tuple[datetime | None, float | None, datetime | None] = (last_seen_at, offset, offset_at)

    def observe(self, device_ts: datetime, received_at: datetime) -> datetime:
        """Learn from one message; returns its time on the gateway's clock."""
        observed = (received_at - device_ts).total_seconds()
        estimate = estimate_clock_offset(self.clock_offset_s, self.clock_offset_at, observed, received_at)
        self.clock_offset_s, self.clock_offset_at = estimate, received_at
        if self.last_seen_at is None or received_at > self.last_seen_at:
            self.last_seen_at = received_at
        return corrected_time(device_ts, estimate, received_at)

    def changed(self) -> bool:
        """Whether the database's row is due a rewrite: seen after a minute, or its clock estimate moved."""
        seen, offset, offset_at = self.stored
        if self.last_seen_at is not None and (seen is None or (self.last_seen_at - seen).total_seconds() >= _SEEN_EVERY_S):
            return True
        if self.clock_offset_s is None or self.clock_offset_at is None:
            return False
        # Unbound by newer messages, the stored pair relaxes to the same estimate later on.
        return offset is None or offset_at is None or abs(self.clock_offset_s - relaxed_clock_offset(offset, offset_at, self.clock_offset_at)) > _OFFSET_SLACK_S

    def row(self, device_id: str, pg: bool) -> tuple[Any, ...]:
        """Key then last_seen_at, clock_offset_s, clock_offset_at, as the backend stores them."""
        return (device_id, db_time(self.last_seen_at, pg), self.clock_offset_s, db_time(self.clock_offset_at, pg))


class _SlotState:
    """One slot's row while readings are folded into it: the last level and its segment start (the last refill)."""

    __slots__ = ("device_id", "level", "level_at", "segment_start", "slot_id")

    def __init__(self, r: tuple[Any, ...]) -> None:
        self.device_id, self.slot_id = r[0], r[1]
        self.level, self.level_at, self.segment_start = r[2], py_time(r[3]), py_time(r[4])

    def observe(self, level: float, ts: datetime, replaced: bool) -> None:
        """A new reading: a refill starts a segment; the latest reading (by time) is the level."""
        if (replaced or is_refill(self.level, self.level_at, level, ts)) and (self.segment_start is None or ts > self.segment_start):
            self.segment_start = ts
        if self.level_at is None or ts >= self.level_at:
            self.level, self.level_at = level, ts

    def row(self, pg: bool) -> tuple[Any, ...]:
        """Key then level, level_at, segment_start, as the backend stores them."""
        return (self.device_id, self.slot_id, self.level, db_time(self.level_at, pg), db_time(self.segment_start, pg))


class GatewayStore:
    """Reads and writes the gateway's tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._clock_cache: dict[str, _DeviceClock] = {}
        self._clock_lock = threading.Lock()
        self._sqlite_writer = threading.Lock()
        self._checkpointer = _Checkpointer(engine) if engine.dialect.name == "sqlite" else None
        # PostgreSQL settle: the id below which all is visible, and a candidate awaiting its writers.
        self._safe = 0
        self._mark: tuple[int, list[str]] | None = None

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
        """Store a batch of telemetry in one transaction, each reading at most once; nothing else is rewritten.

        This is ingest's hot path, and it only appends: the device's clock offset corrects each
        timestamp, and the database normalises the levels, checks consent and drops duplicates
        (`BatchSql.insert_readings`). Slot state (last level, refills, what needs a new forecast)
        is folded in afterwards from the appended rows by `settle`, off this path.
        """
        return self.write_telemetry([self.prepare_telemetry(batch)])

    def prepare_telemetry(self, batch: Sequence[TelemetryIn]) -> PreparedTelemetry:
        """The Python half of `store_telemetry`: correct each message's time and lay out its readings.

        Ingest runs it on its parsing thread, so that the writers do nothing but database work.
        """
        pg = self.engine.dialect.name == "postgresql"
        with self._clock_lock:
            clocks = self._clocks({m.device_id for m in batch})
            rows = self._rows(batch, clocks, pg)
            devices = []
            for device_id, clock in clocks.items():
                if clock.changed():
                    devices.append(clock.row(device_id, pg))
                    # The prepared batch is written, retried until it is, or stored message by message.
                    clock.stored = (clock.last_seen_at, clock.clock_offset_s, clock.clock_offset_at)
        return PreparedTelemetry(BatchSql.stage_payload(rows, pg), len(rows), devices)

    def write_telemetry(self, prepared: Sequence[PreparedTelemetry]) -> IngestCounts:
        """The database half of `store_telemetry`, for one or more prepared batches, in one transaction."""
        n = sum(p.rows for p in prepared)
        if not n:
            return IngestCounts()
        pg = self.engine.dialect.name == "postgresql"
        latest = {row[0]: row for p in prepared for row in p.devices}  # a device twice: its later clock
        # In id order, so that two writers updating the same devices cannot deadlock.
        devices = [latest[d] for d in sorted(latest)]
        # SQLite takes one writer at a time and makes the others poll with growing sleeps: queue
        # them here instead. PostgreSQL runs concurrent appends side by side.
        with nullcontext() if pg else self._sqlite_writer, self.engine.begin() as conn:
            sql = BatchSql(conn)
            counts = sql.insert_readings([p.payload for p in prepared], n)
            sql.update(_DEV, ["device_id"], _DEV_COLS[1:], devices)
        if self._checkpointer is not None:
            self._checkpointer.poke()
        return counts

    @staticmethod
    def _rows(batch: Sequence[TelemetryIn], clocks: dict[str, _DeviceClock], pg: bool) -> list[tuple[Any, ...]]:
        """The batch's readings as stage rows, each at its device's corrected time."""
        to_db = partial(db_time, pg=pg)
        rows: list[tuple[Any, ...]] = []
        received_at, received_db = None, None
        for msg in batch:
            telemetry = msg.telemetry
            device_ts = telemetry.ts
            clock = clocks.get(msg.device_id)
            ts = clock.observe(device_ts, msg.received_at) if clock is not None else device_ts
            if msg.received_at is not received_at:  # the messages of one network read share it
                received_at = msg.received_at
                received_db = to_db(received_at)
            device_ts_db = to_db(device_ts)
            ts_db = device_ts_db if ts == device_ts else to_db(ts)
            # A `replaced` event carries the slot's new level: it stands in when `levels` has no number.
            replaced = {e.slot_id: e.level for e in telemetry.events if e.kind == "replaced"} if telemetry.events else {}
            for slot_id, raw in telemetry.levels.items():
                value = None if isinstance(raw, str) else raw  # parse_telemetry gives floats, sentinels or None
                if value is None and slot_id in replaced:
                    value = replaced[slot_id]
                rows.append((msg.device_id, slot_id, telemetry.seq, ts_db, device_ts_db, value, slot_id in replaced, received_db))
            for slot_id, level in replaced.items():
                if slot_id not in telemetry.levels:
                    rows.append((msg.device_id, slot_id, telemetry.seq, ts_db, device_ts_db, level, True, received_db))
        return rows

    def _clocks(self, device_ids: set[str]) -> dict[str, _DeviceClock]:
        """The batch's devices' clocks, from this worker's cache or, for newcomers, from the database.

        Each worker keeps its own estimate from the messages it sees (under a shared subscription,
        a share of each device's messages): a minimum over fewer messages is still an estimate of
        the same offset. The database's copy lets a restarted or new worker start from it.
        """
        missing = [d for d in device_ids if d not in self._clock_cache]
        if missing:
            if len(self._clock_cache) + len(missing) > _CLOCK_CACHE:
                self._clock_cache.clear()
                missing = list(device_ids)
            with self.engine.connect() as conn:
                for r in BatchSql(conn).select_in(_DEV, _DEV_COLS, "device_id", sorted(missing)):
                    self._clock_cache[r[0]] = _DeviceClock(py_time(r[1]), r[2], py_time(r[3]))
        return {d: c for d in device_ids if (c := self._clock_cache.get(d)) is not None}

    def settle(self, limit: int = 50_000) -> int:
        """Fold readings appended since the last call into their slots; returns how many were folded.

        Per slot: the latest level and its time, the start of its segment (a `replaced` event, or
        a rise of REFILL_JUMP over the reading before it), and the dirty flag that asks for a new
        forecast. Readings are taken in id order from a cursor kept in the database. Ids are given
        out when a row is inserted, but transactions commit in their own order, so a smaller id may
        still become visible after a larger one: only ids up to a high-water mark below which every
        transaction has finished are taken (`_high_water`).
        """
        done = 0
        high = self._high_water()
        while True:
            with self.engine.begin() as conn:
                sql = BatchSql(conn)
                position = sql.cursor_position("settle", lock=True)
                if position >= high:
                    return done
                rows = conn.exec_driver_sql(
                    f"SELECT id, device_id, slot_id, ts, level, replaced FROM gw_readings WHERE id > {int(position)} AND id <= {int(high)} ORDER BY id LIMIT {int(limit)}"
                ).fetchall()
                if not rows:
                    sql.set_cursor_position("settle", high)
                    return done
                by_slot: dict[tuple[str, str], list[tuple[datetime, float, bool]]] = {}
                for r in rows:
                    by_slot.setdefault((r[1], r[2]), []).append((py_time(r[3]), r[4], bool(r[5])))  # type: ignore[arg-type]
                device_ids = sorted({d for d, _ in by_slot})
                slots = [_SlotState(r) for r in sql.select_in(_SLOT, _SLOT_STATE_COLS, "device_id", device_ids) if (r[0], r[1]) in by_slot]
                for slot in slots:
                    for ts, level, replaced in sorted(by_slot[(slot.device_id, slot.slot_id)], key=lambda x: x[0]):
                        slot.observe(level, ts, replaced)
                sql.update(_SLOT, ["device_id", "slot_id"], ["level", "level_at", "segment_start"], [sl.row(sql.pg) for sl in slots], dirty=True)
                sql.set_cursor_position("settle", rows[-1][0] if len(rows) == limit else high)
                done += len(rows)

    def _high_water(self) -> int:
        """The largest reading id below which every inserting transaction has finished.

        SQLite: max(id), since it has one writer at a time and so ids commit in order. PostgreSQL
        never blocks ingest for it: each call notes max(id) and then the transactions then writing
        to gw_readings (a row with a smaller id that is not yet visible can only be theirs); that
        mark becomes safe once they have all finished, at once when there were none, else at a
        later call (the next tick).
        """
        with self.engine.begin() as conn:
            top = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM gw_readings").scalar_one())
            if conn.dialect.name != "postgresql":
                return top
            if self._mark is not None and not self._in_progress(conn, self._mark[1]):
                self._safe = max(self._safe, self._mark[0])
                self._mark = None
            writers = [str(r[0]) for r in conn.exec_driver_sql(_WRITERS).fetchall()]
            if not writers:
                self._safe, self._mark = max(self._safe, top), None
            elif self._mark is None:
                self._mark = (top, writers)
            return self._safe

    @staticmethod
    def _in_progress(conn: Any, xids: list[str]) -> bool:
        # A transaction holds the lock on its own id until it ends.
        sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND transactionid::text = ANY(%s)"
        return bool(conn.exec_driver_sql(sql, (xids,)).scalar_one())

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
