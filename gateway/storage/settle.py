"""Settle: the readings ingest appended, folded into their slots' state at the forecaster's tick.

Per slot: the latest level and its time, the start of its segment (a `replaced` event, or a rise
past the refill rule, `gateway.readings.is_refill`), and the dirty flag that asks for a new
forecast. Readings are taken in id order from a cursor kept in the database. Ids are given out
when a row is inserted, but transactions commit in their own order, so a smaller id may still
become visible after a larger one: only ids up to a high-water mark below which every
transaction has finished are taken (`Settler._high_water`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..readings import SlotState
from .batch_sql import BatchSql, db_time, py_time
from .tables import GwSlot

__all__ = ["SETTLE_CURSOR", "Settler"]

SETTLE_CURSOR = "settle"  # its row in gw_cursors: the last reading id folded into slot state
_SLOT: sa.Table = GwSlot.__table__  # type: ignore[attr-defined]
_SLOT_STATE_COLS = ("device_id", "slot_id", "level", "level_at", "segment_start")
# The transactions other than ours that hold a write lock on gw_readings, by transaction id.
_WRITERS = (
    "SELECT DISTINCT t.transactionid FROM pg_locks AS r JOIN pg_locks AS t ON t.virtualtransaction = r.virtualtransaction "
    "AND t.locktype = 'transactionid' WHERE r.locktype = 'relation' AND r.relation = 'gw_readings'::regclass "
    "AND r.mode = 'RowExclusiveLock' AND r.pid <> pg_backend_pid()"
)


def _state_row(slot: SlotState, pg: bool) -> tuple[Any, ...]:
    """Key then level, level_at, segment_start, as the backend stores them."""
    return (slot.device_id, slot.slot_id, slot.level, db_time(slot.level_at, pg), db_time(slot.segment_start, pg))


class Settler:
    """Folds appended readings into slot state; one per deployment, called at each tick."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # PostgreSQL: the id below which all is visible, and a candidate awaiting its writers.
        self._safe = 0
        self._mark: tuple[int, list[str]] | None = None

    def settle(self, limit: int = 50_000) -> int:
        """Fold readings appended since the last call into their slots; returns how many were folded."""
        done = 0
        high = self._high_water()
        while True:
            with self.engine.begin() as conn:
                sql = BatchSql(conn)
                position = sql.cursor_position(SETTLE_CURSOR, lock=True)
                if position >= high:
                    return done
                rows = conn.exec_driver_sql(
                    f"SELECT id, device_id, slot_id, ts, level, replaced FROM gw_readings WHERE id > {int(position)} AND id <= {int(high)} ORDER BY id LIMIT {int(limit)}"
                ).fetchall()
                if not rows:
                    sql.set_cursor_position(SETTLE_CURSOR, high)
                    return done
                by_slot: dict[tuple[str, str], list[tuple[datetime, float, bool]]] = {}
                for r in rows:
                    by_slot.setdefault((r[1], r[2]), []).append((py_time(r[3]), r[4], bool(r[5])))  # type: ignore[arg-type]
                device_ids = sorted({d for d, _ in by_slot})
                slots = [
                    SlotState(r[0], r[1], r[2], py_time(r[3]), py_time(r[4]))
                    for r in sql.select_in(_SLOT, _SLOT_STATE_COLS, "device_id", device_ids)
                    if (r[0], r[1]) in by_slot
                ]
                for slot in slots:
                    slot.fold(by_slot[(slot.device_id, slot.slot_id)])
                sql.update(_SLOT, ["device_id", "slot_id"], ["level", "level_at", "segment_start"], [_state_row(sl, sql.pg) for sl in slots], dirty=True)
                sql.set_cursor_position(SETTLE_CURSOR, rows[-1][0] if len(rows) == limit else high)
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
