"""Retention (SPEC 4): old readings become daily aggregates, in short batches beside ingest (tests/infra reruns these on PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

import replenish.storage  # noqa: F401 - registers the service's tables beside the gateway's
from gateway import Birth, GatewayStorage, SlotSpec, TelemetryIn
from gateway.protocol import Telemetry
from gateway.protocol import LevelEvent
from gateway.storage import GwDailyLevel, GwReading, RetentionResult
from replenish.bootstrap import Service
from replenish.settings import Settings

D1 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
CUTOFF = D1 + timedelta(days=2)
SPECS = (SlotSpec("ink", "ink.black", "percent", 100), SlotSpec("beans", "coffee.beans", "g", 1000))
_READINGS: sa.Table = GwReading.__table__  # type: ignore[attr-defined]


def _device(storage: GatewayStorage, device_id: str = "dev-1") -> None:
    storage.registry.record_birth(device_id, Birth("model-x", "coffee.machine", "1.0", SPECS), D1 - timedelta(days=30))
    storage.registry.set_store_readings(device_id, True)


def _msg(seq: int, at: datetime, levels: dict[str, float | str | None], device_id: str = "dev-1", replaced: str | None = None) -> TelemetryIn:
    events = (LevelEvent("replaced", replaced, None),) if replaced else ()
    return TelemetryIn(device_id, Telemetry(seq, at, levels, events), at)


def _days(engine: Engine) -> dict[tuple[str, str, date], GwDailyLevel]:
    with Session(engine) as s:
        return {(d.device_id, d.slot_id, d.day): d for d in s.exec(select(GwDailyLevel))}


def _summary(d: GwDailyLevel) -> tuple[Any, ...]:
    return (d.readings, d.level_min, d.level_max, pytest.approx(d.level_mean, rel=1e-12), d.first_at, d.first_level, d.last_at, d.last_level, d.replaced)


def _seqs(engine: Engine, slot_id: str = "ink") -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT seq FROM gw_readings WHERE slot_id = :s ORDER BY seq"), {"s": slot_id}).scalars())


def test_the_migrations_build_the_tables_the_models_declare(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_old_settled_readings_become_daily_aggregates_and_newer_ones_stay(storage: GatewayStorage) -> None:
    _device(storage)
    last = D1 + timedelta(days=1, microseconds=-1)
    storage.telemetry.store(
        [
            _msg(2, D1 + 6 * H, {"ink": 40}),  # stored before the day's first reading: first and last go by time, not id
            _msg(1, D1, {"ink": 50}),
            _msg(3, D1 + 12 * H, {"ink": 100}, replaced="ink"),
            _msg(4, last, {"ink": 95}),
            _msg(5, D1 + 24 * H, {"ink": 90, "beans": 500}),
            _msg(6, D1 + 36 * H, {"ink": 80}),
            _msg(7, D1 + 47 * H, {"ink": 85}),
            _msg(8, CUTOFF, {"ink": 84}),  # not older than the cutoff
            _msg(9, CUTOFF + H, {"ink": 83}),
        ]
    )
    storage.settler.settle()
    done = storage.retention.reduce(CUTOFF)
    assert (done.readings, done.days, done.batches) == (8, 3, 1)
    assert _seqs(storage.engine) == [8, 9] and _seqs(storage.engine, "beans") == []
    days = _days(storage.engine)
    assert set(days) == {("dev-1", "ink", D1.date()), ("dev-1", "ink", date(2025, 1, 2)), ("dev-1", "beans", date(2025, 1, 2))}
    assert _summary(days[("dev-1", "ink", D1.date())]) == (4, 0.4, 1.0, 0.7125, D1, 0.5, last, 0.95, True)
    assert _summary(days[("dev-1", "ink", date(2025, 1, 2))]) == (3, 0.8, 0.9, 0.85, D1 + 24 * H, 0.9, D1 + 47 * H, 0.85, False)
    assert _summary(days[("dev-1", "beans", date(2025, 1, 2))]) == (1, 0.5, 0.5, 0.5, D1 + 24 * H, 0.5, D1 + 24 * H, 0.5, False)

    assert storage.retention.reduce(CUTOFF) == RetentionResult(), "a second run has nothing left to do"
    assert {k: _summary(v) for k, v in _days(storage.engine).items()} == {k: _summary(v) for k, v in days.items()}
    assert storage.forecasts.history("dev-1", "ink", D1) == [(CUTOFF, 0.84), (CUTOFF + H, 0.83)]


def test_readings_not_yet_settled_stay_however_old_and_merge_into_their_day_later(storage: GatewayStorage) -> None:
    _device(storage)
    storage.telemetry.store([_msg(1, D1 + 1 * H, {"ink": 60}), _msg(2, D1 + 2 * H, {"ink": 55})])
    storage.settler.settle()
    late = [_msg(3, D1, {"ink": 70}), _msg(4, D1 + 3 * H, {"ink": 50}, replaced="ink")]  # old, arriving late, not settled
    storage.telemetry.store([*late, _msg(5, CUTOFF + H, {"ink": 45})])
    assert storage.retention.reduce(CUTOFF).readings == 2
    assert _seqs(storage.engine) == [3, 4, 5], "readings not folded into slot state are never dropped"

    storage.settler.settle()
    assert storage.retention.reduce(CUTOFF).readings == 2
    assert _seqs(storage.engine) == [5]
    (day,) = _days(storage.engine).values()
    assert _summary(day) == (4, 0.5, 0.7, 0.5875, D1, 0.7, D1 + 3 * H, 0.5, True), "merged with the day's row from the earlier run"


def test_new_readings_are_settled_after_a_reduction_that_took_every_reading(storage: GatewayStorage) -> None:
    """SQLite gives a new row the largest id + 1: had retention deleted the newest row, ids would restart below the settle cursor."""
    _device(storage)
    storage.telemetry.store([_msg(i, D1 + i * H, {"ink": 90 - i}) for i in range(3)])
    storage.settler.settle()
    storage.retention.reduce(CUTOFF)
    storage.telemetry.store([_msg(3, CUTOFF + H, {"ink": 30})])
    assert storage.settler.settle() == 1
    assert next(s for s in storage.registry.slots(["dev-1"]) if s.slot_id == "ink").level == 0.3
    storage.retention.reduce(CUTOFF)
    assert _seqs(storage.engine) == [3]
    assert [d.readings for d in _days(storage.engine).values()] == [3]


def _fleet(storage: GatewayStorage) -> None:
    """Four days of two devices' readings every 90 minutes, with refills and readings that share a time."""
    msgs = []
    for n, device_id in enumerate(("dev-1", "dev-2")):
        _device(storage, device_id)
        for i in range(64):
            at = D1 + i * 1.5 * H
            levels = {"ink": 100 - (i * 7 + n * 13) % 100, "beans": 1000 - (i * 37 + n * 11) % 1000}
            msgs.append(_msg(i * 2, at, levels, device_id, replaced="ink" if i % 17 == 5 else None))
            if i % 9 == 0:
                msgs.append(_msg(i * 2 + 1, at, {"ink": (i * 3) % 100}, device_id))  # same time, another level
    storage.telemetry.store(msgs)
    storage.settler.settle()


def test_small_batches_give_the_aggregates_of_one_big_batch(storage: GatewayStorage) -> None:
    engine = storage.engine
    _fleet(storage)
    with engine.connect() as conn:
        readings = [dict(r._mapping) for r in conn.execute(sa.select(_READINGS))]
    whole = storage.retention.reduce(CUTOFF, batch=100_000)
    assert whole.batches == 1 and whole.readings == sum(1 for r in readings if r["ts"] < CUTOFF)
    one_batch = {k: _summary(v) for k, v in _days(engine).items()}

    with engine.begin() as conn:  # the same readings again, with their ids
        conn.execute(sa.delete(GwDailyLevel.__table__))  # type: ignore[arg-type]
        conn.execute(sa.delete(_READINGS))
        conn.execute(sa.insert(_READINGS), readings)
    small = storage.retention.reduce(CUTOFF, batch=7)
    assert small.batches == -(-whole.readings // 7) and small.readings == whole.readings
    assert {k: _summary(v) for k, v in _days(engine).items()} == one_batch
    assert len(one_batch) == 2 * 2 * 2  # two devices, two slots, two days before the cutoff


def test_ingest_goes_on_while_a_long_reduction_runs(storage: GatewayStorage) -> None:
    _device(storage)
    old = 2000
    storage.telemetry.store([_msg(i, D1 + i * timedelta(minutes=1), {"ink": 50, "beans": 500}) for i in range(old)])
    storage.settler.settle()
    results: list[RetentionResult] = []
    started = threading.Event()

    def reduce() -> None:
        started.set()
        results.append(storage.retention.reduce(CUTOFF, batch=20))

    reducer = threading.Thread(target=reduce)
    reducer.start()
    started.wait(5)
    stored_during = stored = 0
    at = CUTOFF + H
    while reducer.is_alive() or stored < 5:
        counts = storage.telemetry.store([_msg(old + stored, at + stored * timedelta(minutes=1), {"ink": 40})])
        assert counts.stored == 1
        stored += 1
        stored_during += reducer.is_alive()
    reducer.join(60)
    assert results and results[0].readings == 2 * old and results[0].batches == 2 * old // 20
    assert stored_during >= 3, "ingest waited for the whole reduction"
    assert _seqs(storage.engine) == list(range(old, old + stored)), "nothing stored meanwhile was lost or reduced"
    assert sum(d.readings for d in _days(storage.engine).values()) == 2 * old


def test_the_service_tick_applies_retention_days_at_most_once_an_hour(db_url: str) -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    service = Service(Settings(env="test", database_url=db_url, retention_days=30))
    service.migrate()
    try:
        storage = service.gateway
        _device(storage)
        storage.telemetry.store([_msg(1, now - timedelta(days=40), {"ink": 70}), _msg(2, now - timedelta(days=29), {"ink": 60})])
        service.tick(now)
        assert _seqs(storage.engine) == [2]
        assert [(d.day, d.readings, d.level_mean) for d in _days(storage.engine).values()] == [((now - timedelta(days=40)).date(), 1, 0.7)]

        storage.telemetry.store([_msg(3, now - timedelta(days=31), {"ink": 65}), _msg(4, now, {"ink": 55})])
        service.tick(now + 30 * timedelta(minutes=1))
        assert _seqs(storage.engine) == [2, 3, 4], "settled, but retention ran less than an hour ago"
        service.tick(now + H)
        assert _seqs(storage.engine) == [2, 4]
        assert service.gateway.retention.reduce(now + H - timedelta(days=30)) == RetentionResult()
    finally:
        service.stop()
