"""Hypothesis-generated device payloads never crash ingest and never store a bad reading (SPEC 3)."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hypothesis.strategies as st
import paho.mqtt.client as mqtt
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from sqlalchemy.engine import Engine

from gateway import EmbeddedBroker, GatewayStorage, IngestOptions, InvalidMessage, TelemetryIn, parse_birth, parse_status, parse_telemetry
from gateway.clock import ManualClock
from gateway.mqtt import new_client
from gateway.protocol import topic_for
from replenish.bootstrap import build_ingestor
from tests.helpers import migrated_engine
from tests.payloads import BIRTH, DEVICE, NOW, REASONS, payloads

def _store(tmp_path: Path) -> tuple[Engine, GatewayStorage]:
    engine = migrated_engine(f"sqlite:///{tmp_path / 'fuzz.db'}")
    store = GatewayStorage.on(engine)
    store.registry.record_birth(DEVICE, parse_birth(json.dumps(BIRTH).encode()), NOW)
    store.registry.set_store_readings(DEVICE, True)
    return engine, store


@contextmanager
def _ingesting(tmp_path: Path, name: str) -> Iterator[tuple[Engine, GatewayStorage, mqtt.Client]]:
    """A store with the fuzz device, an Ingestor on an embedded broker, and a connected publisher."""
    engine, store = _store(tmp_path)
    broker = EmbeddedBroker(port=0)
    broker.start()
    ingestor = build_ingestor(store, ManualClock(NOW), broker.target, IngestOptions(client_id=f"{name}-" + uuid.uuid4().hex[:6], mqtt_version=4))
    ingestor.start()
    publisher = new_client(broker.target, f"{name}-pub-" + uuid.uuid4().hex[:6])
    publisher.connect(broker.target.host, broker.target.port)
    publisher.loop_start()
    try:
        yield engine, store, publisher
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        ingestor.stop()
        broker.stop()
        engine.dispose()


def _assert_only_good_readings(engine: Engine, received_by: datetime) -> None:
    with engine.connect() as conn:
        for row in conn.execute(sa.text("SELECT device_id, slot_id, level, ts, device_ts, received_at FROM gw_readings")):
            assert row.device_id == DEVICE and row.slot_id in ("toner", "waste"), row
            assert math.isfinite(row.level) and 0.0 <= row.level <= 1.0, row
    stored = GatewayStorage.on(engine).forecasts.history(DEVICE, "toner", datetime(1900, 1, 1, tzinfo=UTC))
    assert all(ts <= received_by for ts, _ in stored), "a reading was placed after its arrival"


def test_parsers_reject_with_a_known_reason_or_return_valid_values(tmp_path: Path) -> None:
    engine, store = _store(tmp_path)
    clock = ManualClock(NOW)

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=payloads)
    def check(payload: bytes) -> None:
        for parse in (parse_telemetry, parse_birth, parse_status):
            try:
                parse(payload, DEVICE)
            except InvalidMessage as exc:
                assert exc.reason in REASONS, exc.reason
        try:
            telemetry = parse_telemetry(payload, DEVICE)
        except InvalidMessage:
            return
        store.telemetry.store([TelemetryIn(DEVICE, telemetry, clock.now())])

    check()
    _assert_only_good_readings(engine, NOW)
    engine.dispose()


def test_ingest_survives_a_stream_of_generated_payloads(tmp_path: Path) -> None:
    with _ingesting(tmp_path, "fuzz") as (engine, store, publisher):

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(payload=payloads, suffix=st.sampled_from(["telemetry", "telemetry", "birth", "status"]))
        def send(payload: bytes, suffix: str) -> None:
            if suffix == "birth":
                return  # a retained birth would replace the device's slots; births are fuzzed above
            publisher.publish(topic_for(DEVICE, suffix), payload, qos=1).wait_for_publish(10)

        send()
        # Ingest is still alive and storing: a good reading sent last arrives.
        good = {"v": 1, "device": DEVICE, "seq": 10**12, "ts": (NOW - timedelta(minutes=5)).isoformat(), "levels": {"toner": 42}}
        publisher.publish(topic_for(DEVICE, "telemetry"), json.dumps(good), qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(abs(level - 0.42) < 1e-9 for _, level in store.forecasts.history(DEVICE, "toner", NOW - timedelta(hours=1))):
            time.sleep(0.05)
        assert any(abs(level - 0.42) < 1e-9 for _, level in store.forecasts.history(DEVICE, "toner", NOW - timedelta(hours=1)))
        assert store.dead_letters.recent(), "the generated junk left no dead letters"
        assert {d.reason for d in store.dead_letters.recent(1000)} <= REASONS
        _assert_only_good_readings(engine, NOW)


def test_a_clock_far_ahead_is_rejected_and_ingest_goes_on(tmp_path: Path) -> None:
    with _ingesting(tmp_path, "ahead") as (_engine, store, publisher):
        for seq, ts in ((1, "9999-12-31T23:59:59+00:00"), (2, (NOW + timedelta(days=30)).isoformat()), (3, (NOW - timedelta(minutes=1)).isoformat())):
            doc = {"v": 1, "seq": seq, "ts": ts, "levels": {"toner": 40 - seq}}
            publisher.publish(topic_for(DEVICE, "telemetry"), json.dumps(doc), qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not store.forecasts.history(DEVICE, "toner", NOW - timedelta(hours=1)):
            time.sleep(0.05)
        assert [round(level, 2) for _, level in store.forecasts.history(DEVICE, "toner", datetime(1900, 1, 1, tzinfo=UTC))] == [0.37]
        assert [d.reason for d in store.dead_letters.recent()] == ["bad_timestamp", "bad_timestamp"]  # year 9999, and 30 days ahead
        device = store.registry.devices([DEVICE])[0]
        assert device.clock_offset_s is None or abs(device.clock_offset_s) < 3600, "a broken clock taught an offset"
