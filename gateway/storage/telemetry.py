"""Ingest's hot path into the database: telemetry batches prepared in Python, then appended in one transaction.

Each message's timestamp is corrected by its device's learnt clock (`gateway.readings.DeviceClock`,
cached per worker); the database normalises the levels, checks consent and drops duplicates
(`BatchSql.insert_readings`). Slot state is folded in later, off this path (`Settler`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..metrics import CLOCK_CORRECTIONS
from ..protocol import TelemetryIn
from ..readings import DeviceClock
from .batch_sql import BatchSql, IngestCounts, db_time, py_time
from .tables import GwDevice

__all__ = ["PreparedTelemetry", "TelemetryWriter"]

log = logging.getLogger(__name__)

_DEV: sa.Table = GwDevice.__table__  # type: ignore[attr-defined]
_DEV_COLS = ("device_id", "last_seen_at", "clock_offset_s", "clock_offset_at")
_CHECKPOINT_EVERY_S = 0.5  # SQLite: the background checkpoint's pace while ingest writes
_CHECKPOINT_IDLE_S = 10.0  # and how long it waits for more before its thread ends
_CLOCK_CACHE = 200_000  # devices whose clock a worker remembers; past that it starts afresh


@dataclass(frozen=True, slots=True)
class PreparedTelemetry:
    """A batch of telemetry ready for the database (`TelemetryWriter.prepare`)."""

    payload: Any  # the stage rows as BatchSql.stage_payload lays them out for the backend
    rows: int
    devices: list[tuple[Any, ...]]  # device rows whose clock estimate is due a rewrite


class Checkpointer:
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
        """Writes came: make sure the checkpointing thread runs."""
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


def _clock_row(device_id: str, clock: DeviceClock, pg: bool) -> tuple[Any, ...]:
    """Key then last_seen_at, clock_offset_s, clock_offset_at, as the backend stores them."""
    return (device_id, db_time(clock.last_seen_at, pg), clock.clock_offset_s, db_time(clock.clock_offset_at, pg))


class TelemetryWriter:
    """Appends telemetry: each reading at most once, at its device's corrected time; nothing else is rewritten."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._clock_cache: dict[str, DeviceClock] = {}
        self._clock_lock = threading.Lock()
        self._sqlite_writer = threading.Lock()
        self._checkpointer = Checkpointer(engine) if engine.dialect.name == "sqlite" else None

    def store(self, batch: Sequence[TelemetryIn]) -> IngestCounts:
        """Prepare and write a batch in one go (ingest splits the two over its threads)."""
        return self.write([self.prepare(batch)])

    def prepare(self, batch: Sequence[TelemetryIn]) -> PreparedTelemetry:
        """The Python half: correct each message's time and lay out its readings.

        Ingest runs it on its parsing thread, so that the writers do nothing but database work.
        """
        pg = self.engine.dialect.name == "postgresql"
        with self._clock_lock:
            clocks = self._clocks({m.device_id for m in batch})
            rows = self._rows(batch, clocks, pg)
            devices = []
            for device_id, clock in clocks.items():
                if clock.changed():
                    devices.append(_clock_row(device_id, clock, pg))
                    # The prepared batch is written, retried until it is, or stored message by message.
                    clock.mark_stored()
        return PreparedTelemetry(BatchSql.stage_payload(rows, pg), len(rows), devices)

    def write(self, prepared: Sequence[PreparedTelemetry]) -> IngestCounts:
        """The database half, for one or more prepared batches, in one transaction."""
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
    def _rows(batch: Sequence[TelemetryIn], clocks: dict[str, DeviceClock], pg: bool) -> list[tuple[Any, ...]]:
        """The batch's readings as stage rows, each at its device's corrected time."""
        to_db = partial(db_time, pg=pg)
        rows: list[tuple[Any, ...]] = []
        received_at: datetime | None = None
        received_db = None
        corrected = 0
        for msg in batch:
            telemetry = msg.telemetry
            device_ts = telemetry.ts
            clock = clocks.get(msg.device_id)
            ts = clock.observe(device_ts, msg.received_at) if clock is not None else device_ts
            if msg.received_at is not received_at:  # the messages of one network read share it
                received_at = msg.received_at
                received_db = to_db(received_at)
            device_ts_db = to_db(device_ts)
            if ts == device_ts:
                ts_db = device_ts_db
            else:
                ts_db = to_db(ts)
                corrected += 1
            # A `replaced` event carries the slot's new level: it stands in when `levels` has no number.
            replaced = {e.slot_id: e.level for e in telemetry.events if e.kind == "replaced"} if telemetry.events else {}
            boot = telemetry.boot  # None: the insert gives the reading its device's
            for slot_id, raw in telemetry.levels.items():
                value = None if isinstance(raw, str) else raw  # parse_telemetry gives floats, sentinels or None
                if value is None and slot_id in replaced:
                    value = replaced[slot_id]
                rows.append((msg.device_id, slot_id, telemetry.seq, ts_db, device_ts_db, value, slot_id in replaced, received_db, boot))
            for slot_id, level in replaced.items():
                if slot_id not in telemetry.levels:
                    rows.append((msg.device_id, slot_id, telemetry.seq, ts_db, device_ts_db, level, True, received_db, boot))
        if corrected:
            CLOCK_CORRECTIONS.inc(corrected)  # messages, of which every reading was corrected
        return rows

    def _clocks(self, device_ids: set[str]) -> dict[str, DeviceClock]:
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
                    self._clock_cache[r[0]] = DeviceClock(py_time(r[1]), r[2], py_time(r[3]))
        return {d: c for d in device_ids if (c := self._clock_cache.get(d)) is not None}
