"""Database plumbing shared by both packages: engines for SQLite and PostgreSQL, UTC datetimes, upserts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sqlalchemy.engine import Dialect, Engine

__all__ = ["UTCDateTime", "make_engine", "normalise_db_url"]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalise_db_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite, a pool on PostgreSQL."""
    url = normalise_db_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA temp_store=MEMORY")  # the ingest stage table (gateway/storage/batch_sql.py)
            # Ingest touches index pages all over gw_readings (one per slot per batch). Its store
            # checkpoints the WAL on a thread of its own (gateway/storage/telemetry.py, Checkpointer); this
            # is the safety net, far enough that it rarely falls on a commit (the default 1,000
            # pages wrote each hot page back ten times as often: store 78 -> 57 µs a message at
            # 10,000, docs/benchmarks.md, "Ingest"). A 64 MB page cache keeps the hot pages.
            cur.execute("PRAGMA wal_autocheckpoint=50000")
            cur.execute("PRAGMA journal_size_limit=67108864")  # the WAL file shrinks back to 64 MB once reset
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
