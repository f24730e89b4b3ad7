"""A status flood from one device beside other devices' telemetry: theirs is all stored, soon (issue 10, SPEC 3)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import REGISTRY

from gateway import Birth, GatewayStorage, IngestOptions, MqttTarget, SlotSpec, Topics
from gateway.clock import ManualClock
from gateway.mqtt import new_client
from replenish.bootstrap import build_ingestor
from tests.helpers import wait_for

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("replenish_gateway_rejected_total", {"reason": reason}) or 0.0


def _printer_statuses_dropped() -> float:
    return REGISTRY.get_sample_value("replenish_gateway_over_budget_total", {"kind": "status", "device_class": "printer"}) or 0.0


def _flood(target: MqttTarget, topic: str, n: int) -> None:
    client = new_client(target, "flood-" + uuid.uuid4().hex[:6])
    client.max_inflight_messages_set(1000)
    client.connect(target.host, target.port)
    client.loop_start()
    infos = [client.publish(topic, json.dumps({"v": 1, "state": "online" if i % 2 else "offline"}), qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def test_a_status_flood_does_not_hold_up_other_devices_telemetry(storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics) -> None:
    devices = [f"quiet-{i:02d}" for i in range(20)]
    birth = Birth("m", "printer.inkjet", "1", (SlotSpec("black", "ink.black", "percent", 100),))
    for d in [*devices, "loud"]:
        storage.registry.record_birth(d, birth, NOW)
        storage.registry.set_store_readings(d, True)
    options = IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics)  # MQTT 5 where the broker speaks it
    ingestor = build_ingestor(storage, ManualClock(NOW + timedelta(days=1)), mqtt_target, options)
    ingestor.start()
    over_before = _rejected("over_budget")
    printers_before = _printer_statuses_dropped()
    flood = threading.Thread(target=_flood, args=(mqtt_target, topics.topic("loud", "status"), 6000))
    try:
        flood.start()
        time.sleep(0.2)  # the flood is under way
        client = new_client(mqtt_target, "quiet-pub-" + uuid.uuid4().hex[:6])
        client.connect(mqtt_target.host, mqtt_target.port)
        client.loop_start()
        started = time.monotonic()
        infos = [
            client.publish(topics.topic(d, "telemetry"), json.dumps({"v": 1, "seq": s, "ts": (NOW + s * timedelta(minutes=1)).isoformat(), "levels": {"black": 100 - s}}), qos=1)
            for s in range(50) for d in devices
        ]  # fmt: skip
        for info in infos:
            info.wait_for_publish(60)
        client.disconnect()
        client.loop_stop()

        def stored() -> int:
            with storage.engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM gw_readings WHERE device_id LIKE 'quiet-%'")).scalar_one())

        assert wait_for(lambda: stored() == len(devices) * 50, timeout=60), f"{stored()} of {len(devices) * 50} stored"
        took = time.monotonic() - started
        flood.join(120)
        assert wait_for(lambda: ingestor.pending == 0, timeout=60)
        assert took < 30, f"the quiet devices' 1,000 readings took {took:.1f} s beside the flood"
        # The flood's client has its PUBACKs once the broker has the messages, not once the gateway
        # has them (amqtt broadcasts from a queue of its own, seconds behind under load).
        assert wait_for(lambda: _rejected("over_budget") - over_before >= 6000 - 2500 - 120, timeout=60), "the flood beyond the loud device's budget is dropped"
        # Its birth came from the registry (none was published here): the flood is a printer's.
        assert wait_for(lambda: _printer_statuses_dropped() - printers_before == _rejected("over_budget") - over_before)
    finally:
        ingestor.stop()
