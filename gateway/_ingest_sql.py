"""Raw SQL for one ingest batch, per backend: read device and slot state, write updates and readings.

The hot path bypasses SQLAlchemy's per-value type processing, which cost more than everything
else in ingest (docs/benchmarks.md, "Ingest"). Datetimes are written in exactly the form the
ORM's `UTCDateTime` writes them, so both paths read and compare the same rows:
- PostgreSQL: each write is one statement over `json_array_elements()` of one JSON document,
  so a batch costs one round trip, and the rows are encoded by the json module in C;
- SQLite: `executemany`, in process, with naive UTC text timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

__all__ = ["BatchSql"]

_PG = postgresql.dialect()


class BatchSql:
    """The statements of an ingest batch for one connection's backend."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def to_db(self, value: datetime | None) -> str | None:
        """A UTC datetime as the backend's column stores it (what `UTCDateTime` would write)."""
        if value is None:
            return None
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        if self.pg:
            return value.isoformat()
        return value.isoformat(sep=" ", timespec="microseconds")[:26]  # naive: without "+00:00"

    def from_db(self, value: Any) -> datetime | None:
        """A timestamp column's raw value as a UTC datetime."""
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

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

    def insert_ignore(self, table: sa.Table, cols: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
        """INSERT the rows, skipping those that break a unique constraint; returns how many went in."""
        if not rows:
            return 0
        names = ", ".join(cols)
        if self.pg:
            typed = ", ".join(f"(x->>{i})::{table.c[c].type.compile(dialect=_PG)}" for i, c in enumerate(cols))
            sql = f"INSERT INTO {table.name} ({names}) SELECT {typed} FROM json_array_elements(%s::json) AS x ON CONFLICT DO NOTHING"
            return int(self.conn.exec_driver_sql(sql, (json.dumps(rows),)).rowcount)
        marks = ", ".join("?" * len(cols))
        return int(self.conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING", list(rows)).rowcount)

    @staticmethod
    def _literal(value: Any) -> str:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        raise TypeError(f"only booleans are written as literals, got {value!r}")
