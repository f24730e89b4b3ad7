"""Retention (SPEC 4): readings older than a cutoff become one row per slot and UTC day, then are dropped.

The work goes in batches of readings in id order, each batch one short transaction that merges
them into `gw_daily_levels` and deletes exactly them. A crash loses nothing and counts nothing
twice, and a second run finds nothing left to do. Only readings already folded into slot
state are taken: ids up to the settle cursor (`settle.SETTLE_CURSOR`); on SQLite, never the
newest reading (`Retention._ceiling`).

Each batch's bounds are found first by a read that takes no lock. Then the batch's write runs
on that id range alone. On SQLite the write lock is held for that write and nothing more
(Python's sqlite3 opens the transaction at its first INSERT or DELETE, not at the read), and a
pause after each batch lets a waiting writer in, so ingest waits for one short transaction at
most, never for the whole run. On PostgreSQL the
delete and the merge are one statement (`DELETE ... RETURNING` feeding an upsert), and ingest's
inserts never wait for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .batch_sql import BatchSql, db_time
from .settle import SETTLE_CURSOR

__all__ = ["Retention", "RetentionResult"]

# SQLite makes a waiting writer poll with sleeps that grow to 100 ms, and a run that takes the
# lock straight back after each commit keeps it out: beside a 300,000-reading reduction (batches
# of about 60 ms) an ingest write then waited up to 540 ms. A pause after each batch as long as
# the batch (at most 100 ms) lets it in: at most 140 ms, about one batch.
_SQLITE_PAUSE_MAX_S = 0.1

_COLS = "device_id, slot_id, day, readings, level_min, level_max, level_mean, first_at, first_level, last_at, last_level, replaced"
# The batch's readings, one row per slot and day: first and last by time (then id, as the batches
# go), so a run in small batches gives what one big batch gives.
_AGGREGATE = (
    "SELECT device_id, slot_id, day, count(*), min(level), max(level), avg(level), "
    "min(ts), max(first_level), max(ts), max(last_level), {any_replaced} "
    "FROM (SELECT device_id, slot_id, day, ts, level, replaced, "
    "first_value(level) OVER (PARTITION BY device_id, slot_id, day ORDER BY ts, id) AS first_level, "
    "first_value(level) OVER (PARTITION BY device_id, slot_id, day ORDER BY ts DESC, id DESC) AS last_level "
    "FROM (SELECT id, device_id, slot_id, {day} AS day, ts, level, replaced FROM {source}) AS r) AS b "
    "WHERE TRUE GROUP BY device_id, slot_id, day"  # SQLite: the WHERE keeps its parser from reading ON CONFLICT as a join's ON
)
# Merged with what an earlier run left for the same day: counts add, the mean weighs by them.
_MERGE = (
    "ON CONFLICT (device_id, slot_id, day) DO UPDATE SET "
    "readings = gw_daily_levels.readings + excluded.readings, "
    "level_min = {least}(gw_daily_levels.level_min, excluded.level_min), "
    "level_max = {greatest}(gw_daily_levels.level_max, excluded.level_max), "
    "level_mean = (gw_daily_levels.level_mean * gw_daily_levels.readings + excluded.level_mean * excluded.readings) "
    "/ (gw_daily_levels.readings + excluded.readings), "
    "first_level = CASE WHEN excluded.first_at < gw_daily_levels.first_at THEN excluded.first_level ELSE gw_daily_levels.first_level END, "
    "first_at = {least}(gw_daily_levels.first_at, excluded.first_at), "
    "last_level = CASE WHEN excluded.last_at >= gw_daily_levels.last_at THEN excluded.last_level ELSE gw_daily_levels.last_level END, "
    "last_at = {greatest}(gw_daily_levels.last_at, excluded.last_at), "
    "replaced = gw_daily_levels.replaced OR excluded.replaced"
)
_BATCH = "id > :lo AND id <= :hi AND ts < {cutoff}"
_BOUNDS = "SELECT count(*), max(id) FROM (SELECT id FROM gw_readings WHERE id > :lo AND id <= :hi AND ts < {cutoff} ORDER BY id LIMIT :n) AS b"

_PG_CUTOFF = "CAST(:cutoff AS timestamptz)"
_PG_REDUCE = (
    f"WITH gone AS (DELETE FROM gw_readings WHERE {_BATCH.format(cutoff=_PG_CUTOFF)} RETURNING id, device_id, slot_id, ts, level, replaced), "
    f"merged AS (INSERT INTO gw_daily_levels ({_COLS}) "
    + _AGGREGATE.format(any_replaced="bool_or(replaced)", day="(ts AT TIME ZONE 'UTC')::date", source="gone")
    + " "
    + _MERGE.format(least="LEAST", greatest="GREATEST")
    + " RETURNING 1) SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM merged)"
)
_SQLITE_MERGE = (
    f"INSERT INTO gw_daily_levels ({_COLS}) "  # first: Python's sqlite3 opens the transaction only for a statement that starts so
    + _AGGREGATE.format(any_replaced="max(replaced)", day="date(ts)", source=f"gw_readings WHERE {_BATCH.format(cutoff=':cutoff')}")
    + " "
    + _MERGE.format(least="min", greatest="max")
)
_SQLITE_DELETE = f"DELETE FROM gw_readings WHERE {_BATCH.format(cutoff=':cutoff')}"


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one `Retention.reduce` did."""

    readings: int = 0  # reduced into daily rows and deleted
    days: int = 0  # daily rows written or merged into, summed over the batches
    batches: int = 0


class Retention:
    """Reduces old readings to daily aggregates and drops them; one per deployment, called from the serving tick."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    def reduce(self, cutoff: datetime, batch: int = 5000) -> RetentionResult:
        """Reduce the settled readings with `ts` before `cutoff`, `batch` at a time, each batch in a transaction of its own."""
        readings = days = batches = 0
        lo = 0
        cut = db_time(cutoff, self._pg)
        while True:
            started = time.monotonic()
            with self.engine.begin() as conn:
                found, hi = self._bounds(conn, lo, self._ceiling(conn), cut, batch)
                if not found:
                    break
                gone, merged = self._reduce(conn, lo, hi, cut)
            readings, days, batches, lo = readings + gone, days + merged, batches + 1, hi
            if found < batch:
                break
            if not self._pg:
                time.sleep(min(time.monotonic() - started, _SQLITE_PAUSE_MAX_S))
        return RetentionResult(readings, days, batches)

    def _ceiling(self, conn: Connection) -> int:
        """The largest id a batch may take: settled, and on SQLite below the newest row.

        SQLite gives a new row the largest id there + 1 (gw_readings has no AUTOINCREMENT): were
        the newest row deleted, new ids would start again below the settle cursor and never be
        settled. So it stays, until a newer one comes.
        """
        settled = BatchSql(conn).cursor_position(SETTLE_CURSOR)
        if self._pg:
            return settled
        newest = int(conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM gw_readings")).scalar_one())
        return min(settled, newest - 1)

    def _bounds(self, conn: Connection, lo: int, ceiling: int, cutoff: str | None, batch: int) -> tuple[int, int]:
        """How many readings the next batch after id `lo` holds, and its last id: a read that takes no lock."""
        sql = _BOUNDS.format(cutoff=_PG_CUTOFF if self._pg else ":cutoff")
        found, hi = conn.execute(sa.text(sql), {"lo": lo, "hi": ceiling, "cutoff": cutoff, "n": batch}).one()
        return int(found), int(hi or lo)

    def _reduce(self, conn: Connection, lo: int, hi: int, cutoff: str | None) -> tuple[int, int]:
        """Merge the old readings with ids in (lo, hi] into their days and delete them; how many of each."""
        params = {"lo": lo, "hi": hi, "cutoff": cutoff}
        if self._pg:
            gone, merged = conn.execute(sa.text(_PG_REDUCE), params).one()
            return int(gone), int(merged)
        merged = conn.execute(sa.text(_SQLITE_MERGE), params).rowcount
        gone = conn.execute(sa.text(_SQLITE_DELETE), params).rowcount
        return int(gone), int(merged)
