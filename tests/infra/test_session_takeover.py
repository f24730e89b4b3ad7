"""A gateway worker whose session another client takes over notices, says so, and takes its session back.

Mosquitto 2.0.11 (the machine's) closes the connection without the MQTT 5 DISCONNECT "session taken
over" (0x8E) that later brokers send; the worker then logs the lost connection. With 0x8E it logs
an error naming the takeover (`SessionTakenOver`).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest

from prometheus_client import REGISTRY

from gateway import IngestConnection, MqttTarget, Topics
from tests.helpers import MQTT_URL, wait_for


def _losses() -> float:
    """Ingest connections lost so far, whatever the cause."""
    return sum(REGISTRY.get_sample_value("replenish_gateway_connection_losses_total", {"cause": c}) or 0.0 for c in ("taken_over", "disconnected", "lost"))


def test_a_taken_over_ingest_session_is_logged_and_won_back(topics: Topics, caplog: pytest.LogCaptureFixture) -> None:
    target = MqttTarget.from_url(MQTT_URL)
    client_id = "replenish-gateway-" + uuid.uuid4().hex[:8]
    conn = IngestConnection(target, client_id, (topics.every("telemetry"),), lambda: datetime.now(UTC), version=5)
    conn.start(timeout=15)
    caplog.set_level(logging.WARNING, logger="gateway.mqtt.ingest_connection")
    losses = _losses()
    try:
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        intruder.connect(target.host, target.port)
        intruder.loop_start()
        lost = ("took over our session", "broker closed the connection")
        assert wait_for(lambda: any(any(w in r.getMessage() for w in lost) for r in caplog.records), timeout=10)
        assert _losses() == losses + 1, "the lost session was not counted"
        intruder.loop_stop()
        intruder.disconnect()
        time.sleep(1.5)  # the worker reconnects after its back-off (1 s) and takes its session back
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub-" + uuid.uuid4().hex[:8])
        publisher.connect(target.host, target.port)
        publisher.loop_start()
        publisher.publish(topics.topic("dev-1", "telemetry"), b"{}", qos=1).wait_for_publish(10)
        publisher.loop_stop()
        publisher.disconnect()
        assert wait_for(lambda: conn.queued >= 1, timeout=15), "the worker did not get its session back"
    finally:
        conn.close()
