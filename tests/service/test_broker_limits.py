"""The embedded broker's (amqtt 0.12) one limit of Mosquitto's, and the packet limit it lacks (docs/deploy.md, "Broker limits").

amqtt has no packet-size, queue, in-flight or keep-alive limit: a payload of any size is read,
held and delivered, and the gateway's own 64 KiB check rejects it. The one limit it has is
Mosquitto's `persistent_client_expiration`: a persistent session left for two weeks is deleted.
(tests/deploy/test_compose.py runs the shipped Mosquitto's limits for real.)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import amqtt.broker
import paho.mqtt.client as mqtt
import pytest

from gateway import DeviceSecret, EmbeddedAccess, EmbeddedBroker, GatewayStorage, IngestOptions, MqttTarget, Topics
from gateway.clock import ManualClock
from gateway.protocol import MAX_PAYLOAD
from replenish.bootstrap import build_ingestor
from tests.helpers import migrated_engine, publish_all, wait_for

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DAY = 86_400.0
MOSQUITTO_MAX_PACKET = 327_680  # deploy/mosquitto/mosquitto.conf: Mosquitto drops a client sending more


def _telemetry(seq: int, level: float, ts: datetime = NOW) -> bytes:
    return json.dumps({"v": 1, "seq": seq, "ts": ts.isoformat(), "levels": {"black": level}}).encode()


def test_a_payload_mosquitto_would_refuse_crosses_the_embedded_broker_and_is_dead_lettered(
    storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics
) -> None:
    """No packet limit in amqtt: the broker holds the whole payload, the gateway rejects it, the others go on."""
    big_sender, other = "lim-" + uuid.uuid4().hex[:8], "lim-" + uuid.uuid4().hex[:8]
    for dev in (big_sender, other):
        storage.registry.set_store_readings(dev, True)
    ingestor = build_ingestor(storage, ManualClock(NOW + timedelta(minutes=5)), mqtt_target, IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics))
    ingestor.start()
    birth = json.dumps({"v": 1, "model": "hp-67", "kind": "printer.inkjet", "firmware": "1.0", "slots": [{"slot": "black", "consumable": "ink.black", "unit": "percent", "capacity": 100}]}).encode()
    padding = b" " * (MOSQUITTO_MAX_PACKET + 64 * 1024)  # still valid JSON, over the gateway's limit and Mosquitto's
    huge = _telemetry(1, 50)[:-1] + padding + b"}"
    assert len(huge) > MOSQUITTO_MAX_PACKET > MAX_PAYLOAD
    try:
        publish_all(
            mqtt_target,
            [(topics.topic(d, "birth"), birth, False) for d in (big_sender, other)]
            + [(topics.topic(big_sender, "telemetry"), huge, False)]  # acknowledged by amqtt: the sender stays connected
            + [(topics.topic(d, "telemetry"), _telemetry(2, 40), False) for d in (big_sender, other)],
        )
        assert wait_for(lambda: any(d.reason == "too_large" for d in storage.dead_letters.recent()))
        assert wait_for(lambda: all(storage.forecasts.history(d, "black", NOW - timedelta(days=1)) for d in (big_sender, other)))
        rejected = [d for d in storage.dead_letters.recent() if d.reason == "too_large"]
        assert [d.topic for d in rejected] == [topics.topic(big_sender, "telemetry")]
        for dev in (big_sender, other):  # only the oversized message was lost, the sender's next one was stored
            assert [round(level, 2) for _, level in storage.forecasts.history(dev, "black", NOW - timedelta(days=1))] == [0.4]
    finally:
        ingestor.stop()


# ---- session expiry (Mosquitto's persistent_client_expiration) ---------------------------------


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[EmbeddedBroker, EmbeddedAccess]]:
    """The embedded broker with per-device credentials: only such sessions persist (amqtt drops anonymous ones)."""
    engine = migrated_engine(f"sqlite:///{tmp_path / 'access.db'}")
    access = EmbeddedAccess(engine, ManualClock(NOW))
    access.grant_service("replenish-service", "service-secret")
    access.grant_devices([DeviceSecret("lim-dev", "device-secret")])
    broker = EmbeddedBroker(port=0, access=access)
    broker.start()
    yield broker, access
    broker.stop()
    engine.dispose()


@dataclass
class Worker:
    """A gateway-like client with a persistent session (clean session off, MQTT 3.1.1 as on amqtt)."""

    target: MqttTarget
    client_id: str
    session_present: list[bool] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def connect(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False, protocol=mqtt.MQTTv311)
        client.username_pw_set(self.target.username, self.target.password)
        connected = threading.Event()

        def on_connect(_c: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, reason: mqtt.ReasonCode, _p: object) -> None:
            assert not reason.is_failure
            self.session_present.append(flags.session_present)
            connected.set()

        client.on_connect = on_connect
        client.on_message = lambda _c, _u, m: self.received.append(m.payload)
        client.connect(self.target.host, self.target.port, keepalive=30)
        client.loop_start()
        assert connected.wait(10), "no CONNACK"
        return client

    @staticmethod
    def leave(client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()


def _publish_as(device: MqttTarget, topic: str, payload: bytes) -> None:
    """One QoS 1 publish, acknowledged, by a device connected as itself (its client id is its username)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device.username or "", protocol=mqtt.MQTTv311)
    client.username_pw_set(device.username, device.password)
    client.connect(device.host, device.port)
    client.loop_start()
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(10)
    assert info.is_published()
    client.disconnect()
    client.loop_stop()


def _broker_clock_ahead(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the clock of amqtt's session monitor (it reads time.time() about once a second) ahead."""
    monkeypatch.setattr(amqtt.broker, "time", SimpleNamespace(time=lambda: time.time() + seconds))
    time.sleep(2.5)  # two passes of the monitor


def test_a_persistent_session_is_kept_for_two_weeks_then_deleted(secured: tuple[EmbeddedBroker, EmbeddedAccess], monkeypatch: pytest.MonkeyPatch) -> None:
    broker, access = secured
    worker = Worker(MqttTarget(broker.host, broker.port, "replenish-service", "service-secret"), "replenish-gateway-" + uuid.uuid4().hex[:6])
    device = MqttTarget(broker.host, broker.port, "lim-dev", "device-secret")
    topic = access.topics.topic("lim-dev", "telemetry")

    client = worker.connect()
    client.subscribe(access.topics.every("telemetry"), qos=1)
    time.sleep(0.5)
    Worker.leave(client)
    _publish_as(device, topic, _telemetry(1, 90))  # queued in the worker's offline session
    _broker_clock_ahead(monkeypatch, 13 * DAY)
    client = worker.connect()
    assert wait_for(lambda: worker.received == [_telemetry(1, 90)]), "a session away for 13 days lost its queued reading"
    assert worker.session_present[-1] is True
    Worker.leave(client)

    monkeypatch.undo()
    _publish_as(device, topic, _telemetry(2, 80))
    _broker_clock_ahead(monkeypatch, 15 * DAY)
    client = worker.connect()
    time.sleep(1.0)  # anything still queued would arrive now
    Worker.leave(client)
    assert worker.session_present[-1] is False, "a session away for 15 days is deleted, with what it held"
    assert worker.received == [_telemetry(1, 90)]
