"""Settle on PostgreSQL, where transactions commit in any order: a reading whose transaction commits late is never skipped."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gateway import Birth, GatewayStorage, SlotSpec, TelemetryIn
from gateway.protocol import Telemetry
from tests.helpers import migrated_engine

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_settle_never_skips_a_reading_whose_transaction_commits_late(pg_database_url: str) -> None:
    """Ids are handed out at insert time, commits come in any order: settle holds back until the transaction in flight ends."""
    engine = migrated_engine(pg_database_url)
    store = GatewayStorage.on(engine)
    store.registry.record_birth("dev-1", Birth("model-x", "printer.laser", "1.0", (SlotSpec("ink", "ink.black", "percent", 100),)), T0)
    store.registry.set_store_readings("dev-1", True)
    slow = engine.connect()
    tx = slow.begin()
    slow.execute(
        sa.text("INSERT INTO gw_readings (device_id, slot_id, seq, ts, device_ts, level, replaced, received_at) VALUES ('dev-1', 'ink', 1, :t, :t, 0.9, false, :t)"),
        {"t": T0},
    )  # the smaller id, not yet committed
    store.telemetry.store([TelemetryIn("dev-1", Telemetry(2, T0 + H, {"ink": 60.0}), T0 + H)])  # a larger id, committed
    started = time.monotonic()
    assert store.settler.settle() == 0, "nothing past the id of a transaction in flight"
    assert time.monotonic() - started < 2, "settle never waits on ingest"
    assert store.settler.settle() == 0
    tx.commit()
    slow.close()
    assert store.settler.settle() == 2, "once it has committed, both are folded"
    (ink,) = store.registry.slots(["dev-1"])
    assert (ink.level, ink.level_at) == (0.6, T0 + H)
    engine.dispose()
