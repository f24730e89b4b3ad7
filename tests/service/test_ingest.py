"""Ingest over a real broker into a real database: consent gating, at-most-once storage, dead letters, forecasts."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from gateway import Forecaster, GatewayStorage, IngestOptions, MqttTarget, Topics
from gateway.clock import ManualClock
from replenish.bootstrap import build_ingestor
from tests.helpers import publish_all, wait_for

START = datetime(2026, 11, 1, tzinfo=UTC)


def test_readings_stored_once_only_with_consent_and_bad_messages_dead_lettered(storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics) -> None:
    clock = ManualClock(START + timedelta(days=3))  # the readings below are up to 2.25 days old
    dev, stranger = "ing-" + uuid.uuid4().hex[:8], "ing-" + uuid.uuid4().hex[:8]
    storage.registry.set_store_readings(dev, True)  # the household's telemetry consent; the stranger has none
    ingestor = build_ingestor(storage, clock, mqtt_target, IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics))
    ingestor.start()
    topic_for = topics.topic
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
        publish_all(mqtt_target, msgs)
        assert wait_for(lambda: len(storage.dead_letters.recent()) >= 2 and len(storage.forecasts.history(dev, "black", START)) >= 10)
        time.sleep(0.3)  # anything still in flight would show up now
        history = storage.forecasts.history(dev, "black", START)
        assert [round(level, 2) for _, level in history] == [round(0.9 - 0.05 * i, 2) for i in range(10)]
        assert storage.forecasts.history(stranger, "black", START) == []
        assert {d.reason for d in storage.dead_letters.recent()} >= {"not_json", "bad_timestamp"}
        storage.settler.settle()
        assert Forecaster(storage.registry, storage.forecasts).refresh(clock.now()) >= 1
        fc = storage.forecasts.views([dev])[(dev, "black")]
        assert fc.rate_per_day is not None and 0.15 < fc.rate_per_day < 0.25  # 5 % per 6 h
        assert fc.empty_p10 is not None and fc.empty_p50 is not None and fc.empty_p10 <= fc.empty_p50
    finally:
        ingestor.stop()
