"""A boot identity joins the readings' dedupe key: reboots that repeat (seq, ts) pairs are stored, redeliveries are not.

Over a real broker into a real database (tests/infra reruns these on Mosquitto and PostgreSQL).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import GatewayStorage, IngestOptions, MqttTarget, Topics, UTCDateTime, make_engine
from gateway.clock import ManualClock
from gateway.protocol import Telemetry, TelemetryIn
from replenish.bootstrap import build_ingestor
from tests.helpers import migrate_to, publish_all, wait_for

NOW = datetime(2026, 11, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # where a device's clock restarts after a reboot, until it syncs
H = timedelta(hours=1)
SLOTS = [{"slot": "black", "consumable": "ink.black", "unit": "percent", "capacity": 100}]


def _birth(boot: int | str | None = None) -> bytes:
    doc: dict[str, Any] = {"v": 1, "model": "hp-67", "kind": "printer.inkjet", "firmware": "1.0", "slots": SLOTS}
    if boot is not None:
        doc["boot"] = boot
    return json.dumps(doc).encode()


def _telemetry(seq: int, level: int, boot: int | str | None = None) -> bytes:
    """A reading on a schedule from boot: the clock reset to 1970, one report an hour, so `seq` n is always at 1970 + n h."""
    doc: dict[str, Any] = {"v": 1, "seq": seq, "ts": (EPOCH + seq * H).isoformat(), "levels": {"black": level}}
    if boot is not None:
        doc["boot"] = boot
    return json.dumps(doc).encode()


def _stored(engine: Engine, device_id: str) -> list[tuple[str, int, float]]:
    """(boot, seq, level) of the device's readings, in the order they were stored."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT boot, seq, level FROM gw_readings WHERE device_id = :d ORDER BY id"), {"d": device_id})
        return [(r.boot, r.seq, round(r.level, 2)) for r in rows]


def _ingest(storage: GatewayStorage, target: MqttTarget, topics: Topics, msgs: list[tuple[str, str, bytes]], expect: int) -> None:
    """Publish (device, suffix, payload) in order to a running ingestor; return once `expect` readings are stored and no more come."""
    ingestor = build_ingestor(storage, ManualClock(NOW), target, IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics))
    ingestor.start()
    devices = {d for d, _, _ in msgs}

    def count() -> int:
        with storage.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM gw_readings WHERE device_id IN :d").bindparams(sa.bindparam("d", expanding=True)), {"d": sorted(devices)}).scalar_one())

    try:
        publish_all(target, [(topics.topic(d, suffix), payload, False) for d, suffix, payload in msgs])
        assert wait_for(lambda: count() >= expect), count()
        time.sleep(0.5)  # a reading stored twice would show up now
    finally:
        ingestor.stop()


def _device(storage: GatewayStorage) -> str:
    device_id = "boot-" + uuid.uuid4().hex[:8]
    storage.registry.set_store_readings(device_id, True)  # the household's telemetry consent
    return device_id


def test_reboots_that_reset_the_clock_to_the_same_epoch_store_every_reading(storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics) -> None:
    # The known limit of protocol v1 without a boot: three boots, the clock reset to 1970 at each,
    # one report an hour from boot, so each boot repeats the (seq, ts) pairs of the one before.
    in_telemetry, in_birth, neither = _device(storage), _device(storage), _device(storage)
    msgs: list[tuple[str, str, bytes]] = []
    for boot in (1, 2, 3):
        for seq in range(3):
            level = 90 - 30 * (boot - 1) - 10 * seq  # each boot's readings tell apart: 90 80 70, 60 50 40, 30 20 10
            if seq == 0:
                msgs += [(in_telemetry, "birth", _birth(boot)), (in_birth, "birth", _birth(boot)), (neither, "birth", _birth())]
            msgs += [(in_telemetry, "telemetry", _telemetry(seq, level, boot)), (in_birth, "telemetry", _telemetry(seq, level)), (neither, "telemetry", _telemetry(seq, level))]
    _ingest(storage, mqtt_target, topics, msgs, expect=9 + 9 + 3)
    every = [(str(boot), seq, (90 - 30 * (boot - 1) - 10 * seq) / 100) for boot in (1, 2, 3) for seq in range(3)]
    assert _stored(storage.engine, in_telemetry) == every
    # A reading without a boot takes the boot of the device's latest birth, stored before it.
    assert _stored(storage.engine, in_birth) == every
    # A device that sends no boot keeps the limit: its later boots' readings are duplicates of the first's.
    assert _stored(storage.engine, neither) == [("", 0, 0.9), ("", 1, 0.8), ("", 2, 0.7)]


def test_a_redelivered_message_is_stored_once_with_or_without_a_boot(storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics) -> None:
    with_boot, without, named = _device(storage), _device(storage), _device(storage)
    msgs = [(with_boot, "birth", _birth(5)), (without, "birth", _birth()), (named, "birth", _birth("r4nd0m-1d"))]
    for seq in range(3):
        msgs += [(with_boot, "telemetry", _telemetry(seq, 50 - seq, 5)), (without, "telemetry", _telemetry(seq, 50 - seq)), (named, "telemetry", _telemetry(seq, 50 - seq))]
    # QoS 1 redeliveries: the same bytes again, some right away, one after the device's next birth
    # (a message that carries its boot stays a duplicate whatever the device's latest birth says).
    msgs += [(with_boot, "telemetry", _telemetry(0, 50, 5)), (without, "telemetry", _telemetry(0, 50)), (named, "telemetry", _telemetry(1, 49))]
    msgs += [(with_boot, "birth", _birth(6)), (with_boot, "telemetry", _telemetry(2, 48, 5))]
    _ingest(storage, mqtt_target, topics, msgs, expect=9)
    assert _stored(storage.engine, with_boot) == [("5", 0, 0.5), ("5", 1, 0.49), ("5", 2, 0.48)]
    assert _stored(storage.engine, without) == [("", 0, 0.5), ("", 1, 0.49), ("", 2, 0.48)]
    assert _stored(storage.engine, named) == [("r4nd0m-1d", 0, 0.5), ("r4nd0m-1d", 1, 0.49), ("r4nd0m-1d", 2, 0.48)]
    assert {d.device_id: d.boot for d in storage.registry.devices([with_boot, without, named])} == {with_boot: "6", without: None, named: "r4nd0m-1d"}


# ---------------------------------------------------------------- the migration

_OLD_READINGS = sa.table(
    "gw_readings",
    *(sa.column(c) for c in ("device_id", "slot_id", "seq", "level", "replaced")),
    *(sa.column(c, UTCDateTime()) for c in ("ts", "device_ts", "received_at")),
)


def test_revision_0006_gives_old_readings_the_empty_boot_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate_to(engine, "0005")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO gw_devices (device_id, online, store_readings) VALUES ('dev-1', FALSE, TRUE)"))
        conn.execute(sa.text("INSERT INTO gw_slots (device_id, slot_id, consumable, unit, capacity, fills_up, dirty) VALUES ('dev-1', 'ink', 'ink', 'percent', 100, FALSE, FALSE)"))
        conn.execute(_OLD_READINGS.insert(), [{"device_id": "dev-1", "slot_id": "ink", "seq": s, "level": 0.9 - 0.1 * s, "replaced": False, "ts": NOW + s * H, "device_ts": EPOCH + s * H, "received_at": NOW + s * H} for s in range(3)])
    migrate_to(engine, "head")
    storage = GatewayStorage.on(engine)
    assert _stored(engine, "dev-1") == [("", 0, 0.9), ("", 1, 0.8), ("", 2, 0.7)]
    assert [d.boot for d in storage.registry.devices(["dev-1"])] == [None]

    def again(seq: int, level: float, boot: str | None) -> TelemetryIn:
        return TelemetryIn("dev-1", Telemetry(seq, EPOCH + seq * H, {"ink": level}, (), boot), NOW + 10 * H)

    # The same (seq, ts) as the old rows: without a boot, a duplicate of them; with one, a new reading.
    counts = storage.telemetry.store([again(0, 50, None), again(0, 40, "2"), again(1, 30, "2")])
    assert (counts.stored, counts.duplicates) == (2, 1)
    assert _stored(engine, "dev-1")[3:] == [("2", 0, 0.4), ("2", 1, 0.3)]
    migrate_to(engine, "0005", downgrade=True)
    # The old key cannot hold readings that differ only in their boot: the first stored stays.
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT seq, level FROM gw_readings ORDER BY id")).all()
        assert "boot" not in {c["name"] for c in sa.inspect(conn).get_columns("gw_devices")}
    assert [(s, round(level, 2)) for s, level in kept] == [(0, 0.9), (1, 0.8), (2, 0.7)]
    old = {"device_id": "dev-1", "slot_id": "ink", "seq": 2, "level": 0.1, "replaced": False, "ts": NOW, "device_ts": EPOCH + 2 * H, "received_at": NOW}
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the old key is back
        conn.execute(_OLD_READINGS.insert().values(**old))
    migrate_to(engine, "head")
    assert _stored(engine, "dev-1") == [("", 0, 0.9), ("", 1, 0.8), ("", 2, 0.7)]
    engine.dispose()
