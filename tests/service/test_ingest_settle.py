"""The insert-only ingest path and `settle`, which folds appended readings into slot state (tests/infra reruns these on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gateway import Birth, GatewayStorage, SlotSpec, TelemetryIn
from gateway.protocol import Telemetry
from gateway.protocol import LevelEvent
from gateway.readings import normalise_level

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
SPECS = (
    SlotSpec("ink", "ink.black", "percent", 100),
    SlotSpec("beans", "coffee.beans", "g", 1000),
    SlotSpec("waste", "toner.waste", "percent", 100, fills_up=True),
)


def _device(storage: GatewayStorage, device_id: str = "dev-1", consent: bool = True) -> None:
    storage.registry.record_birth(device_id, Birth("model-x", "printer.laser", "1.0", SPECS), T0)
    storage.registry.set_store_readings(device_id, consent)


def _msg(seq: int, at: datetime, levels: dict[str, float | str | None], device_id: str = "dev-1", replaced: str | None = None) -> TelemetryIn:
    events = (LevelEvent("replaced", replaced, None),) if replaced else ()
    return TelemetryIn(device_id, Telemetry(seq, at, levels, events), at)


def _slot(storage: GatewayStorage, slot_id: str, device_id: str = "dev-1"):  # type: ignore[no-untyped-def]
    return next(s for s in storage.registry.slots([device_id]) if s.slot_id == slot_id)


def test_ingest_only_appends_and_settle_folds_levels_refills_and_dirty(storage: GatewayStorage) -> None:
    store = storage
    _device(store)
    counts = store.telemetry.store([_msg(1, T0, {"ink": 80}), _msg(2, T0 + H, {"ink": 70})])
    assert (counts.stored, counts.duplicates) == (2, 0)
    assert _slot(store, "ink").level is None, "ingest itself rewrites no slot row"
    assert store.settler.settle() == 2
    ink = _slot(store, "ink")
    assert (ink.level, ink.level_at, ink.segment_start, ink.dirty) == (0.7, T0 + H, None, True)
    assert store.settler.settle() == 0, "each reading is folded once"

    # A rise of a fifth or more is a refill; a buffered older reading arriving late changes nothing.
    store.telemetry.store([_msg(4, T0 + 3 * H, {"ink": 100}), _msg(3, T0 + 2 * H, {"ink": 65})])
    store.telemetry.store([_msg(0, T0 - H, {"ink": 90})])
    assert store.settler.settle() == 3
    ink = _slot(store, "ink")
    assert (ink.level, ink.level_at, ink.segment_start) == (1.0, T0 + 3 * H, T0 + 3 * H)

    # `replaced` starts a segment even without a jump (a partial cartridge, say).
    store.telemetry.store([_msg(5, T0 + 4 * H, {"ink": 98}, replaced="ink")])
    store.settler.settle()
    assert _slot(store, "ink").segment_start == T0 + 4 * H
    with storage.engine.connect() as conn:
        flags = dict(conn.execute(sa.text("SELECT seq, replaced FROM gw_readings WHERE slot_id = 'ink'")).all())
    assert flags[5] and not any(v for k, v in flags.items() if k != 5)


def test_a_replaced_event_gives_the_new_level_when_levels_do_not(storage: GatewayStorage) -> None:
    """docs/protocol.md: `replaced` carries the new level, also for a slot whose level is unknown or absent."""
    store = storage
    _device(store)
    store.telemetry.store([_msg(1, T0, {"ink": 30, "beans": 100})])
    unknown = TelemetryIn("dev-1", Telemetry(2, T0 + H, {"ink": "unknown"}, (LevelEvent("replaced", "ink", 100.0),)), T0 + H)
    absent = TelemetryIn("dev-1", Telemetry(3, T0 + 2 * H, {"ink": 99}, (LevelEvent("replaced", "beans", 900.0),)), T0 + 2 * H)
    assert store.telemetry.store([unknown, absent]).stored == 3
    store.settler.settle()
    ink, beans = _slot(store, "ink"), _slot(store, "beans")
    assert (ink.segment_start, ink.level) == (T0 + H, 0.99)
    assert (beans.segment_start, beans.level) == (T0 + 2 * H, 0.9)


def test_counts_consent_duplicates_sentinels_and_unknown_slots(storage: GatewayStorage) -> None:
    store = storage
    _device(store)
    _device(store, "dev-2", consent=False)
    batch = [
        _msg(1, T0, {"ink": 50, "beans": 400, "nosuch": 3}),
        _msg(1, T0, {"ink": 50}),  # a QoS 1 redelivery
        _msg(2, T0 + H, {"ink": "unknown", "beans": None}),
        _msg(1, T0, {"ink": 50}, device_id="dev-2"),
        _msg(1, T0, {"ink": 50}, device_id="stranger"),
    ]
    counts = store.telemetry.store(batch)
    assert (counts.stored, counts.duplicates, counts.rejected, counts.unknown, counts.not_consented) == (2, 1, 1, 2, 2)
    store.registry.set_store_readings("dev-2", True)  # consent is read by each batch, never cached
    assert store.telemetry.store([_msg(1, T0, {"ink": 50}, device_id="dev-2")]).stored == 1


def test_the_database_normalises_exactly_like_normalise_level(storage: GatewayStorage) -> None:
    store = storage
    _device(store)
    raws = [0.0, 0.1, 12.5, 33.3, 99.99, 100.0, 150.0, 1e6, 7, 1234.5678]
    store.telemetry.store([_msg(i, T0 + i * H, {"ink": r, "beans": r, "waste": r}) for i, r in enumerate(raws)])
    with storage.engine.connect() as conn:
        got = {(row.slot_id, row.seq): row.level for row in conn.execute(sa.text("SELECT slot_id, seq, level FROM gw_readings"))}
    for spec in SPECS:
        for i, r in enumerate(raws):
            assert got[(spec.slot_id, i)] == normalise_level(float(r), spec), (spec, r)


def test_an_odd_slot_name_is_staged_verbatim(storage: GatewayStorage) -> None:
    """PostgreSQL stages with COPY's text format: tabs, newlines and backslashes must survive it."""
    store = storage
    odd = "a\tb\\n\nc"
    store.registry.record_birth("dev-1", Birth("m", "k", "1", (SlotSpec(odd, "ink.black", "percent", 100),)), T0)
    store.registry.set_store_readings("dev-1", True)
    assert store.telemetry.store([_msg(1, T0, {odd: 40})]).stored == 1
    assert store.forecasts.history("dev-1", odd, T0 - H) == [(T0, 0.4)]
