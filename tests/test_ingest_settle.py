"""The insert-only ingest path and `settle`, which folds appended readings into slot state, on both backends."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import Birth, GatewayStore, SlotSpec, Telemetry, TelemetryIn, make_engine
from gateway._messages import LevelEvent
from gateway._normalise import normalise_level
from replenish._db import migrate

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
SPECS = (
    SlotSpec("ink", "ink.black", "percent", 100),
    SlotSpec("beans", "coffee.beans", "g", 1000),
    SlotSpec("waste", "toner.waste", "percent", 100, fills_up=True),
)


def _device(store: GatewayStore, device_id: str = "dev-1", consent: bool = True) -> None:
    store.record_birth(device_id, Birth("model-x", "printer.laser", "1.0", SPECS), T0)
    store.set_store_readings(device_id, consent)


def _msg(seq: int, at: datetime, levels: dict[str, float | str | None], device_id: str = "dev-1", replaced: str | None = None) -> TelemetryIn:
    events = (LevelEvent("replaced", replaced, None),) if replaced else ()
    return TelemetryIn(device_id, Telemetry(seq, at, levels, events), at)


def _slot(store: GatewayStore, slot_id: str, device_id: str = "dev-1"):  # type: ignore[no-untyped-def]
    return next(s for s in store.slots([device_id]) if s.slot_id == slot_id)


def test_ingest_only_appends_and_settle_folds_levels_refills_and_dirty(engine: Engine) -> None:
    store = GatewayStore(engine)
    _device(store)
    counts = store.store_telemetry([_msg(1, T0, {"ink": 80}), _msg(2, T0 + H, {"ink": 70})])
    assert (counts.stored, counts.duplicates) == (2, 0)
    assert _slot(store, "ink").level is None, "ingest itself rewrites no slot row"
    assert store.settle() == 2
    ink = _slot(store, "ink")
    assert (ink.level, ink.level_at, ink.segment_start, ink.dirty) == (0.7, T0 + H, None, True)
    assert store.settle() == 0, "each reading is folded once"

    # A rise of a fifth or more is a refill; a buffered older reading arriving late changes nothing.
    store.store_telemetry([_msg(4, T0 + 3 * H, {"ink": 100}), _msg(3, T0 + 2 * H, {"ink": 65})])
    store.store_telemetry([_msg(0, T0 - H, {"ink": 90})])
    assert store.settle() == 3
    ink = _slot(store, "ink")
    assert (ink.level, ink.level_at, ink.segment_start) == (1.0, T0 + 3 * H, T0 + 3 * H)

    # `replaced` starts a segment even without a jump (a partial cartridge, say).
    store.store_telemetry([_msg(5, T0 + 4 * H, {"ink": 98}, replaced="ink")])
    store.settle()
    assert _slot(store, "ink").segment_start == T0 + 4 * H
    with engine.connect() as conn:
        flags = dict(conn.execute(sa.text("SELECT seq, replaced FROM gw_readings WHERE slot_id = 'ink'")).all())
    assert flags[5] and not any(v for k, v in flags.items() if k != 5)


def test_a_replaced_event_gives_the_new_level_when_levels_do_not(engine: Engine) -> None:
    """docs/protocol.md: `replaced` carries the new level, also for a slot whose level is unknown or absent."""
    store = GatewayStore(engine)
    _device(store)
    store.store_telemetry([_msg(1, T0, {"ink": 30, "beans": 100})])
    unknown = TelemetryIn("dev-1", Telemetry(2, T0 + H, {"ink": "unknown"}, (LevelEvent("replaced", "ink", 100.0),)), T0 + H)
    absent = TelemetryIn("dev-1", Telemetry(3, T0 + 2 * H, {"ink": 99}, (LevelEvent("replaced", "beans", 900.0),)), T0 + 2 * H)
    assert store.store_telemetry([unknown, absent]).stored == 3
    store.settle()
    ink, beans = _slot(store, "ink"), _slot(store, "beans")
    assert (ink.segment_start, ink.level) == (T0 + H, 0.99)
    assert (beans.segment_start, beans.level) == (T0 + 2 * H, 0.9)


def test_counts_consent_duplicates_sentinels_and_unknown_slots(engine: Engine) -> None:
    store = GatewayStore(engine)
    _device(store)
    _device(store, "dev-2", consent=False)
    batch = [
        _msg(1, T0, {"ink": 50, "beans": 400, "nosuch": 3}),
        _msg(1, T0, {"ink": 50}),  # a QoS 1 redelivery
        _msg(2, T0 + H, {"ink": "unknown", "beans": None}),
        _msg(1, T0, {"ink": 50}, device_id="dev-2"),
        _msg(1, T0, {"ink": 50}, device_id="stranger"),
    ]
    counts = store.store_telemetry(batch)
    assert (counts.stored, counts.duplicates, counts.rejected, counts.unknown, counts.not_consented) == (2, 1, 1, 2, 2)
    store.set_store_readings("dev-2", True)  # consent is read by each batch, never cached
    assert store.store_telemetry([_msg(1, T0, {"ink": 50}, device_id="dev-2")]).stored == 1


def test_the_database_normalises_exactly_like_normalise_level(engine: Engine) -> None:
    store = GatewayStore(engine)
    _device(store)
    raws = [0.0, 0.1, 12.5, 33.3, 99.99, 100.0, 150.0, 1e6, 7, 1234.5678]
    store.store_telemetry([_msg(i, T0 + i * H, {"ink": r, "beans": r, "waste": r}) for i, r in enumerate(raws)])
    with engine.connect() as conn:
        got = {(row.slot_id, row.seq): row.level for row in conn.execute(sa.text("SELECT slot_id, seq, level FROM gw_readings"))}
    for spec in SPECS:
        for i, r in enumerate(raws):
            assert got[(spec.slot_id, i)] == normalise_level(float(r), spec), (spec, r)


def test_an_odd_slot_name_is_staged_verbatim(engine: Engine) -> None:
    """PostgreSQL stages with COPY's text format: tabs, newlines and backslashes must survive it."""
    store = GatewayStore(engine)
    odd = "a\tb\\n\nc"
    store.record_birth("dev-1", Birth("m", "k", "1", (SlotSpec(odd, "ink.black", "percent", 100),)), T0)
    store.set_store_readings("dev-1", True)
    assert store.store_telemetry([_msg(1, T0, {odd: 40})]).stored == 1
    assert store.history("dev-1", odd, T0 - H) == [(T0, 0.4)]


@pytest.mark.infra
def test_settle_never_skips_a_reading_whose_transaction_commits_late(pg_database_url: str) -> None:
    """Ids are handed out at insert time, commits come in any order: settle holds back until the transaction in flight ends."""
    engine = make_engine(pg_database_url)
    migrate(engine)
    store = GatewayStore(engine)
    _device(store)
    slow = engine.connect()
    tx = slow.begin()
    slow.execute(
        sa.text("INSERT INTO gw_readings (device_id, slot_id, seq, ts, device_ts, level, replaced, received_at) VALUES ('dev-1', 'ink', 1, :t, :t, 0.9, false, :t)"),
        {"t": T0},
    )  # the smaller id, not yet committed
    store.store_telemetry([_msg(2, T0 + H, {"ink": 60})])  # a larger id, committed
    started = time.monotonic()
    assert store.settle() == 0, "nothing past the id of a transaction in flight"
    assert time.monotonic() - started < 2, "settle never waits on ingest"
    assert store.settle() == 0
    tx.commit()
    slow.close()
    assert store.settle() == 2, "once it has committed, both are folded"
    ink = _slot(store, "ink")
    assert (ink.level, ink.level_at) == (0.6, T0 + H)
    engine.dispose()


def _blocked_take(parsed, release):  # type: ignore[no-untyped-def]
    """What a writer's `take` returns once `release` has run; asserts it was blocked until then."""
    got: list[object] = []
    writer = threading.Thread(target=lambda: got.append(parsed.take(10)))
    writer.start()
    time.sleep(0.2)
    assert not got, "the writer should still be waiting"
    release()
    writer.join(5)
    assert got
    return got[0]


def test_writers_never_overtake_a_birth() -> None:
    """Batches commit side by side, except around a birth or status: those keep their place."""
    from gateway._ingest import _Parsed

    parsed = _Parsed(limit=100)
    parsed.put(["a"], [("run", None, None)])  # type: ignore[list-item]
    parsed.put(["b"], [("birth", "b", None)])  # type: ignore[list-item]
    parsed.put(["c"], [("run", None, None)])  # type: ignore[list-item]
    first = parsed.take(10)
    assert first is not None and first[0] == ["a"] and not first[2], "telemetry never merges into a birth's batch"
    second = _blocked_take(parsed, lambda: parsed.done(False))  # the birth waits for the batch before it
    assert second[0] == ["b"] and second[2]
    third = _blocked_take(parsed, lambda: parsed.done(True))  # nothing starts while the birth is being stored
    assert third[0] == ["c"]
    parsed.done(False)
    parsed.close()
    assert parsed.take(10) is None
