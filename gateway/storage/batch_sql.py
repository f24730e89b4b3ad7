"""Raw SQL for one ingest batch, per backend: stage raw readings, insert them, update rows.

The hot path bypasses SQLAlchemy's per-value type processing, which cost more than everything
else in ingest (docs/benchmarks.md, "Ingest"). Datetimes are written in exactly the form the
ORM's `UTCDateTime` writes them, so both paths read and compare the same rows.

A batch's readings go, raw, into a temporary stage table (PostgreSQL: one `COPY`; SQLite:
`executemany`), and one `INSERT ... SELECT` moves them into `gw_readings`: it joins the device
(telemetry consent, read in the same transaction, so a withdrawal takes effect at once) and the
slot (unit, capacity, whether it fills up, to normalise the level exactly as
`gateway.readings.normalise_level` does), gives each reading its boot (the message's, else the
one of the device's latest birth, else ''), and skips duplicates on the unique key. All of that runs in
the database, in C, off the Python thread.
Other updates: PostgreSQL, one statement over `json_array_elements()` of one JSON document;
SQLite, `executemany`, in process, with naive UTC text timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

__all__ = ["BatchSql", "IngestCounts", "db_time", "py_time"]

_PG = postgresql.dialect()
# `boot` is the message's own, or NULL: the reading then takes its device's (gw_devices.boot) in the insert.
_STAGE_COLS = ("device_id", "slot_id", "seq", "ts", "device_ts", "raw", "replaced", "received_at", "boot")
_STAGE_PG = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS gw_stage (device_id text, slot_id text, seq bigint, ts timestamptz, "
    "device_ts timestamptz, raw double precision, replaced boolean, received_at timestamptz, boot text) ON COMMIT DELETE ROWS"
)
_STAGE_SQLITE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS gw_stage (device_id TEXT, slot_id TEXT, seq INTEGER, ts TEXT, "
    "device_ts TEXT, raw REAL, replaced INTEGER, received_at TEXT, boot TEXT)"
)
# normalise_level in SQL: percent or amount -> fraction of capacity, clamped, headroom for receptacles.
_FRACTION = "CASE WHEN sl.unit = 'percent' THEN s.raw / 100.0 ELSE s.raw / sl.capacity END"
_CLAMPED = {True: f"LEAST(GREATEST({_FRACTION}, 0.0), 1.0)", False: f"min(max({_FRACTION}, 0.0), 1.0)"}
# What became of the staged readings that were not stored, per device looked up once.
_COUNTS = (
    "WITH dv AS MATERIALIZED (SELECT device_id, store_readings AS ok FROM gw_devices WHERE device_id IN (SELECT DISTINCT device_id FROM gw_stage)), "
    "sl AS MATERIALIZED (SELECT device_id, slot_id FROM gw_slots WHERE device_id IN (SELECT DISTINCT device_id FROM gw_stage)) "
    "SELECT count(*) FILTER (WHERE NOT coalesce(dv.ok, FALSE)), "
    "count(*) FILTER (WHERE dv.ok AND sl.slot_id IS NULL), "
    "count(*) FILTER (WHERE dv.ok AND sl.slot_id IS NOT NULL AND s.raw IS NULL) "
    "FROM gw_stage AS s LEFT JOIN dv ON dv.device_id = s.device_id LEFT JOIN sl ON sl.device_id = s.device_id AND sl.slot_id = s.slot_id"
)
# COPY's text format: backslash, tab, newline and carriage return must be escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


_SQLITE_STAGE_ROWS = 3600  # x 9 columns: under SQLite's 32,766 bound parameters a statement


@cache
def _sqlite_stage_insert(rows: int) -> str:
    one = "(" + ", ".join("?" * len(_STAGE_COLS)) + ")"
    return f"INSERT INTO gw_stage ({', '.join(_STAGE_COLS)}) VALUES " + ", ".join([one] * rows)


@dataclass(slots=True)
class IngestCounts:
    """What became of a batch's readings."""

    stored: int = 0
    duplicates: int = 0
    not_consented: int = 0  # the device is unknown or its household did not consent to telemetry
    unknown: int = 0  # a sentinel or null instead of a number
    rejected: int = 0  # a slot the device's birth did not announce


def db_time(value: datetime | None, pg: bool) -> str | None:
    """A UTC datetime as the backend's column stores it (what `UTCDateTime` would write)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if pg:
        return value.isoformat()
    return value.isoformat(sep=" ", timespec="microseconds")[:26]  # naive: without "+00:00"


def py_time(value: Any) -> datetime | None:
    """A timestamp column's raw value as a UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class BatchSql:
    """The statements of an ingest batch for one connection's backend."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def select_in(self, table: sa.Table, cols: Sequence[str], key: str, values: Sequence[str], lock: bool = False) -> list[tuple[Any, ...]]:
        """Rows of `table` whose `key` is among `values`, ordered by it; `lock` takes row locks on PostgreSQL."""
        if not values:
            return []
        names = ", ".join(cols)
        if self.pg:
            sql = f"SELECT {names} FROM {table.name} WHERE {key} IN (SELECT json_array_elements_text(%s::json)) ORDER BY {key}"
            if lock:
                sql += " FOR UPDATE"
            return list(self.conn.exec_driver_sql(sql, (json.dumps(list(values)),)).fetchall())
        marks = ", ".join("?" * len(values))
        return list(self.conn.exec_driver_sql(f"SELECT {names} FROM {table.name} WHERE {key} IN ({marks}) ORDER BY {key}", tuple(values)).fetchall())

    def update(self, table: sa.Table, key: Sequence[str], cols: Sequence[str], rows: Sequence[tuple[Any, ...]], **fixed: Any) -> None:
        """UPDATE `cols` (and the `fixed` values) of each row, matched on `key`; each row is key values then col values."""
        if not rows:
            return
        if self.pg:
            names = [*key, *cols]
            typed = {c: f"(x->>{i})::{table.c[c].type.compile(dialect=_PG)}" for i, c in enumerate(names)}
            assign = ", ".join([f"{c} = {typed[c]}" for c in cols] + [f"{c} = {self._literal(v)}" for c, v in fixed.items()])
            match = " AND ".join(f"t.{c} = {typed[c]}" for c in key)
            sql = f"UPDATE {table.name} AS t SET {assign} FROM json_array_elements(%s::json) AS x WHERE {match}"
            self.conn.exec_driver_sql(sql, (json.dumps(rows),))
            return
        assign = ", ".join([f"{c} = ?" for c in cols] + [f"{c} = {self._literal(v)}" for c, v in fixed.items()])
        match = " AND ".join(f"{c} = ?" for c in key)
        n = len(key)
        self.conn.exec_driver_sql(f"UPDATE {table.name} SET {assign} WHERE {match}", [(*r[n:], *r[:n]) for r in rows])

    def cursor_position(self, name: str, lock: bool = False) -> int:
        """Where the named cursor over an append-only table stands (0 before its first step); `lock` holds it on PostgreSQL."""
        sql = "SELECT position FROM gw_cursors WHERE name = %s" if self.pg else "SELECT position FROM gw_cursors WHERE name = ?"
        row = self.conn.exec_driver_sql(sql + (" FOR UPDATE" if lock and self.pg else ""), (name,)).first()
        return int(row[0]) if row else 0

    def set_cursor_position(self, name: str, position: int) -> None:
        """Move the named cursor."""
        mark = "%s" if self.pg else "?"
        self.conn.exec_driver_sql(
            f"INSERT INTO gw_cursors (name, position) VALUES ({mark}, {mark}) ON CONFLICT (name) DO UPDATE SET position = excluded.position", (name, position)
        )

    @staticmethod
    def stage_payload(rows: Sequence[tuple[Any, ...]], pg: bool) -> Any:
        """Raw readings (in `_STAGE_COLS` order, timestamps from `db_time`, `raw` None when unknown) laid out for the stage.

        PostgreSQL: lines of COPY's text format; SQLite: the rows themselves, sent as one JSON document.
        """
        if not pg:
            return list(rows)
        null = "\\N"
        return "".join(
            [
                # device_id and boot are of [A-Za-z0-9_-] (the parser's checks): nothing to escape.
                f"{r[0]}\t{r[1].translate(_COPY_ESCAPES)}\t{r[2]}\t{r[3]}\t{r[4]}\t{null if r[5] is None else repr(r[5])}\t{'t' if r[6] else 'f'}\t{r[7]}\t{null if r[8] is None else r[8]}\n"
                for r in rows
            ]
        )

    def insert_readings(self, payloads: Sequence[Any], n: int) -> IngestCounts:
        """Store `n` raw readings given as `stage_payload`s."""
        if not n:
            return IngestCounts()
        self._stage(payloads)
        cols = "device_id, slot_id, boot, seq, ts, device_ts, level, replaced, received_at"
        level = _CLAMPED[self.pg]
        # The consenting slots of the batch's devices are looked up once per device, not once per
        # reading (a batch holds several messages of each device): -20 % of the statement's time.
        # A reading without a boot of its own takes its device's latest birth's, read with the
        # consent in the same transaction (a birth is stored before the telemetry after it).
        # SQLite needs the WHERE to tell the upsert clause from a join constraint.
        sql = (
            f"INSERT INTO gw_readings ({cols}) "  # first: Python's sqlite3 counts rows only for a statement that starts so
            "WITH sl AS MATERIALIZED (SELECT sl.device_id, sl.slot_id, sl.unit, sl.capacity, sl.fills_up, d.boot FROM gw_slots AS sl "
            "JOIN gw_devices AS d ON d.device_id = sl.device_id AND d.store_readings "
            "WHERE sl.device_id IN (SELECT DISTINCT device_id FROM gw_stage)) "
            "SELECT s.device_id, s.slot_id, coalesce(s.boot, sl.boot, ''), s.seq, s.ts, s.device_ts, "
            f"CASE WHEN sl.fills_up THEN 1.0 - {level} ELSE {level} END, s.replaced, s.received_at "
            "FROM gw_stage AS s JOIN sl ON sl.device_id = s.device_id AND sl.slot_id = s.slot_id "
            "WHERE s.raw IS NOT NULL ORDER BY s.device_id, s.slot_id, s.seq ON CONFLICT DO NOTHING"
        )
        # Straight on the driver's cursor: SQLAlchemy's result set-up cost more than the statements' own Python.
        with self._cursor() as cur:
            cur.execute(sql)
            stored = int(cur.rowcount)
            cur.execute(_COUNTS)
            not_consented, rejected, unknown = cur.fetchone()
        duplicates = n - stored - not_consented - rejected - unknown
        return IngestCounts(stored, duplicates, not_consented, unknown, rejected)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        cur = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            yield cur
        finally:
            cur.close()

    def _stage(self, payloads: Sequence[Any]) -> None:
        # A temporary table lives as long as its connection, but its creation is undone with a
        # failed batch's transaction: ask for it every time (a catalog lookup when it exists).
        with self._cursor() as cur:
            if self.pg:
                cur.execute(_STAGE_PG)
                with cur.copy(f"COPY gw_stage ({', '.join(_STAGE_COLS)}) FROM STDIN") as copy:
                    for text in payloads:
                        copy.write(text)
                return
            cur.execute(_STAGE_SQLITE)
            cur.execute("DELETE FROM gw_stage")
            # Multi-row VALUES, a few thousand rows a statement, rather than `executemany`: the
            # sqlite3 module releases the GIL around every step, and with the receiving and parsing
            # threads busy, taking it back once a row cost more than the inserts themselves; and
            # rather than one JSON document, whose `json_each` re-parsed every row once a column.
            flat = [v for p in payloads for r in p for v in r]
            width = len(_STAGE_COLS)
            step = _SQLITE_STAGE_ROWS * width
            for lo in range(0, len(flat), step):
                chunk = flat[lo : lo + step]
                cur.execute(_sqlite_stage_insert(len(chunk) // width), chunk)

    @staticmethod
    def _literal(value: Any) -> str:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        raise TypeError(f"only booleans are written as literals, got {value!r}")
