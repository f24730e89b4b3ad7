"""Bulk writes of one ingest batch: updates by key and inserts that ignore duplicates, fast on each backend.

On PostgreSQL each write is one statement over `unnest()` of one array per column: a batch of
thousands of rows costs one round trip and one short query text. SQLAlchemy's executemany would
send (and psycopg re-parse) a multi-row VALUES of thousands of parameters, or one statement per
row. On SQLite, in process, plain executemany is already cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ._db import insert_ignore

__all__ = ["insert_ignoring_duplicates", "update_by_key"]

_PG = postgresql.dialect()


def _arrays(table: sa.Table, cols: Sequence[str], rows: Sequence[dict[str, Any]]) -> tuple[str, list[list[Any]]]:
    casts = ", ".join(f"%s::{table.c[c].type.compile(dialect=_PG)}[]" for c in cols)
    return casts, [[r[c] for r in rows] for c in cols]


def update_by_key(conn: Connection, table: sa.Table, key: Sequence[str], rows: Sequence[dict[str, Any]], **fixed: Any) -> None:
    """UPDATE each row's non-key columns (and the `fixed` values) where its key columns match."""
    if not rows:
        return
    cols = list(rows[0])
    sets = [c for c in cols if c not in key]
    if conn.dialect.name == "postgresql":
        casts, params = _arrays(table, cols, rows)
        assign = ", ".join([f"{c} = u.{c}" for c in sets] + [f"{c} = %s" for c in fixed])
        match = " AND ".join(f"t.{c} = u.{c}" for c in key)
        sql = f"UPDATE {table.name} AS t SET {assign} FROM unnest({casts}) AS u({', '.join(cols)}) WHERE {match}"
        conn.exec_driver_sql(sql, (*fixed.values(), *params))  # SET comes before FROM
        return
    # Bind names must differ from column names in an UPDATE's SET clause.
    stmt = table.update().where(sa.and_(*(table.c[c] == sa.bindparam(f"k_{c}") for c in key)))
    stmt = stmt.values({**{c: sa.bindparam(f"k_{c}") for c in sets}, **fixed})
    conn.execute(stmt, [{f"k_{c}": r[c] for c in cols} for r in rows])


def insert_ignoring_duplicates(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """INSERT the rows, skipping any that break a unique constraint; returns how many were inserted."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        cols = list(rows[0])
        casts, params = _arrays(table, cols, rows)
        sql = f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT * FROM unnest({casts}) ON CONFLICT DO NOTHING"
        return int(conn.exec_driver_sql(sql, tuple(params)).rowcount)
    stmt = insert_ignore(conn.dialect, table).returning(next(iter(table.primary_key.columns)))
    return len(conn.execute(stmt, list(rows)).all())
