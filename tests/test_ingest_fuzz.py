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

from gateway import (
    EmbeddedBroker,
    GatewayStore,
    Ingestor,
    InvalidMessage,
    ManualClock,
    TelemetryIn,
    make_engine,
    new_client,
    parse_birth,
    parse_status,
    parse_telemetry,
    topic_for,
)
from replenish._db import migrate

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DEVICE = "fuzz-printer"
BIRTH = {
    "v": 1,
    "model": "fuzz-1",
    "kind": "printer.laser",
    "firmware": "1",
    "slots": [
        {"slot": "toner", "consumable": "toner.black", "unit": "percent", "capacity": 100},
        {"slot": "waste", "consumable": "waste.toner", "unit": "g", "capacity": 300, "fills_up": True},
    ],
}
REASONS = {"too_large", "not_json", "not_object", "bad_version", "schema", "bad_field", "bad_timestamp", "bad_level", "topic_mismatch"}

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
scalars = st.one_of(st.none(), numbers, st.text(max_size=12), st.sampled_from(["unknown", "some", "NaN", ""]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
timestamps = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
    st.text(max_size=30),
    json_values,
)
slot_names = st.one_of(st.sampled_from(["toner", "waste", "cyan"]), st.text(max_size=40))
telemetry_docs = st.fixed_dictionaries(
    {
        "v": st.one_of(st.just(1), json_values),
        "seq": st.one_of(st.integers(min_value=0, max_value=2**63 - 1), json_values),
        "ts": timestamps,
        "levels": st.one_of(st.dictionaries(slot_names, scalars, max_size=5), json_values),
    },
    optional={"events": st.one_of(st.lists(st.fixed_dictionaries({"type": st.sampled_from(["replaced", "x"]), "slot": slot_names}, optional={"level": scalars}), max_size=3), json_values), "device": st.sampled_from([DEVICE, "someone-else", 7])},
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    telemetry_docs.map(lambda d: json.dumps(d).encode()),
)


def _store(tmp_path: Path) -> tuple[Engine, GatewayStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'fuzz.db'}")
    migrate(engine)
    store = GatewayStore(engine)
    store.record_birth(DEVICE, parse_birth(json.dumps(BIRTH).encode()), NOW)
    store.set_store_readings(DEVICE, True)
    return engine, store


@contextmanager
def _ingesting(tmp_path: Path, name: str) -> Iterator[tuple[Engine, GatewayStore, mqtt.Client]]:
    """A store with the fuzz device, an Ingestor on an embedded broker, and a connected publisher."""
    engine, store = _store(tmp_path)
    broker = EmbeddedBroker(port=0)
    broker.start()
    ingestor = Ingestor(store, ManualClock(NOW), broker.target, client_id=f"{name}-" + uuid.uuid4().hex[:6], mqtt_version=4)
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
    stored = GatewayStore(engine).history(DEVICE, "toner", datetime(1900, 1, 1, tzinfo=UTC))
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
        store.store_telemetry([TelemetryIn(DEVICE, telemetry, clock.now())])

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
        while time.monotonic() < deadline and not any(abs(level - 0.42) < 1e-9 for _, level in store.history(DEVICE, "toner", NOW - timedelta(hours=1))):
            time.sleep(0.05)
        assert any(abs(level - 0.42) < 1e-9 for _, level in store.history(DEVICE, "toner", NOW - timedelta(hours=1)))
        assert store.dead_letters(), "the generated junk left no dead letters"
        assert {d.reason for d in store.dead_letters(1000)} <= REASONS
        _assert_only_good_readings(engine, NOW)


def test_fast_telemetry_check_is_never_more_lenient_than_the_schema() -> None:
    from gateway._fastcheck import telemetry_surely_valid
    from gateway._messages import validator

    schema = validator("telemetry")
    accepted = []

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(doc=st.one_of(telemetry_docs, json_values))
    def check(doc: object) -> None:
        doc = json.loads(json.dumps(doc))  # as a device's JSON would arrive
        if telemetry_surely_valid(doc):
            accepted.append(doc)
            assert schema.is_valid(doc), doc

    check()
    good = {"v": 1, "device": DEVICE, "seq": 3, "ts": NOW.isoformat(), "levels": {"toner": 40, "waste": None, "x": "some"}, "events": [{"type": "replaced", "slot": "toner", "level": 100}]}
    assert telemetry_surely_valid(good) and accepted, "the fast path must take ordinary messages"


def test_a_clock_far_ahead_is_rejected_and_ingest_goes_on(tmp_path: Path) -> None:
    with _ingesting(tmp_path, "ahead") as (_engine, store, publisher):
        for seq, ts in ((1, "9999-12-31T23:59:59+00:00"), (2, (NOW + timedelta(days=30)).isoformat()), (3, (NOW - timedelta(minutes=1)).isoformat())):
            doc = {"v": 1, "seq": seq, "ts": ts, "levels": {"toner": 40 - seq}}
            publisher.publish(topic_for(DEVICE, "telemetry"), json.dumps(doc), qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not store.history(DEVICE, "toner", NOW - timedelta(hours=1)):
            time.sleep(0.05)
        assert [round(level, 2) for _, level in store.history(DEVICE, "toner", datetime(1900, 1, 1, tzinfo=UTC))] == [0.37]
        assert [d.reason for d in store.dead_letters()] == ["bad_timestamp", "bad_timestamp"]  # year 9999, and 30 days ahead
        device = store.devices([DEVICE])[0]
        assert device.clock_offset_s is None or abs(device.clock_offset_s) < 3600, "a broken clock taught an offset"
