"""Ingest over a real broker into a real database: consent gating, at-most-once storage, dead letters, forecasts."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from gateway import Forecaster, GatewayStore, Ingestor, ManualClock, MqttTarget, new_client, topic_for

START = datetime(2026, 11, 1, tzinfo=UTC)


def _wait(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _publish_all(target: MqttTarget, msgs: list[tuple[str, bytes, bool]]) -> None:
    client = new_client(target, "pub-" + uuid.uuid4().hex[:8])
    client.connect(target.host, target.port)
    client.loop_start()
    for topic, payload, retain in msgs:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_readings_stored_once_only_with_consent_and_bad_messages_dead_lettered(engine: Engine, mqtt_target: MqttTarget) -> None:
    store = GatewayStore(engine)
    clock = ManualClock(START + timedelta(days=3))  # the readings below are up to 2.25 days old
    dev, stranger = "ing-" + uuid.uuid4().hex[:8], "ing-" + uuid.uuid4().hex[:8]
    store.set_store_readings(dev, True)  # the household's telemetry consent; the stranger has none
    ingestor = Ingestor(store, clock, mqtt_target, client_id="gw-" + uuid.uuid4().hex[:8])
    ingestor.start()
    birth = json.dumps({"v": 1, "model": "hp-67", "kind": "printer.inkjet", "firmware": "1.0", "slots": [{"slot": "black", "consumable": "ink.black", "unit": "percent", "capacity": 100}]}).encode()
    msgs: list[tuple[str, bytes, bool]] = [(topic_for(d, "birth"), birth, False) for d in (dev, stranger)]
    for seq in range(10):
        ts = (START + timedelta(hours=6 * seq)).isoformat()
        tel = json.dumps({"v": 1, "seq": seq, "ts": ts, "levels": {"black": 90 - 5 * seq}}).encode()
        msgs += [(topic_for(dev, "telemetry"), tel, False), (topic_for(stranger, "telemetry"), tel, False)]
        if seq % 3 == 0:
            msgs.append((topic_for(dev, "telemetry"), tel, False))  # a QoS 1 redelivery
    msgs.append((topic_for(dev, "telemetry"), b"{broken", False))
    msgs.append((topic_for(dev, "telemetry"), json.dumps({"v": 1, "seq": 99, "ts": "soon", "levels": {"black": 1}}).encode(), False))
    try:
        _publish_all(mqtt_target, msgs)
        _wait(lambda: len(store.dead_letters()) >= 2 and len(store.history(dev, "black", START)) >= 10)
        time.sleep(0.3)  # anything still in flight would show up now
        history = store.history(dev, "black", START)
        assert [round(level, 2) for _, level in history] == [round(0.9 - 0.05 * i, 2) for i in range(10)]
        assert store.history(stranger, "black", START) == []
        assert {d.reason for d in store.dead_letters()} >= {"not_json", "bad_timestamp"}
        assert Forecaster(store).refresh(clock.now()) >= 1
        fc = store.forecasts([dev])[(dev, "black")]
        assert fc.rate_per_day is not None and 0.15 < fc.rate_per_day < 0.25  # 5 % per 6 h
        assert fc.empty_p10 is not None and fc.empty_p50 is not None and fc.empty_p10 <= fc.empty_p50
    finally:
        ingestor.stop()
