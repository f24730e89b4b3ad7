"""Mosquitto's limits in the embedded broker (amqtt 0.12 plus gateway/mqtt/embedded_limits.py; docs/deploy.md, "Broker limits").

- `max_packet_size`: a payload past the gateway's 64 KiB but within the packet limit crosses and
  is dead-lettered; a packet past the limit gets its sender disconnected (its will published)
  before the broker reads its body, and nobody else notices.
- `max_queued_messages` / `max_queued_bytes`: an offline session holds at most so much.
- `persistent_client_expiration`: a persistent session left for two weeks is deleted.
(tests/deploy/test_compose.py runs the shipped Mosquitto's limits for real.)
"""

from __future__ import annotations

import json
import socket
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
from gateway.mqtt.embedded_limits import MAX_PACKET_SIZE, PacketLimitReader
from gateway.protocol import MAX_PAYLOAD
from replenish.bootstrap import build_ingestor
from tests.helpers import migrated_engine, mqtt_packet, mqtt_str, publish_all, wait_for

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DAY = 86_400.0


def _telemetry(seq: int, level: float, ts: datetime = NOW) -> bytes:
    return json.dumps({"v": 1, "seq": seq, "ts": ts.isoformat(), "levels": {"black": level}}).encode()


def _raw_device(target: MqttTarget, client_id: str, will: tuple[str, bytes] | None = None) -> socket.socket:
    """A raw MQTT 3.1.1 connection (clean session), with a last will if given; CONNACK read."""
    flags, payload = 0x02, mqtt_str(client_id)
    if will:
        flags |= 0x04
        payload += mqtt_str(will[0]) + mqtt_str(will[1])
    sock = socket.create_connection((target.host, target.port), timeout=10)
    sock.sendall(mqtt_packet(0x10, mqtt_str("MQTT") + bytes((4, flags)) + (60).to_bytes(2, "big") + payload))
    assert sock.recv(4)[3:4] == b"\x00", "CONNACK refused"
    return sock


def _closed_by_broker(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Whether the broker closes the connection within `timeout` (anything it sends first is read past)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize(
    ("stream", "refused"),
    [
        ([b"\x10\x0c" + b"x" * 12, b"\x30\x05hello"], None),  # two small packets, read in one go
        ([b"\x30", b"\xff", b"\xff", b"\x7f"], 1 + 3 + 0x1FFFFF),  # a 2 MB length, a byte at a time: refused at its last byte
        ([b"\x30\x80\x80\x01"], 1 + 3 + 16384),  # 16 KiB announced: over a 10 KiB limit before any body
        ([b"\x30\x00\xc0\x00"], None),  # an empty packet, then a PINGREQ
    ],
)
async def test_the_packet_limit_reads_the_length_before_the_body(stream: list[bytes], refused: int | None) -> None:
    class Chunks:
        def __init__(self) -> None:
            self.left = list(stream)

        async def read(self, n: int = -1) -> bytes:
            return self.left.pop(0) if self.left else b""

        def feed_eof(self) -> None:
            pass

    reader = PacketLimitReader(Chunks(), 10 * 1024)  # type: ignore[arg-type]
    passed = [await reader.read() for _ in stream]
    assert reader.refused == refused
    if refused is None:
        assert passed == stream
    else:
        assert passed[-1] == b"" and await reader.read() == b""


def test_a_packet_past_the_limit_disconnects_its_sender_only_and_a_payload_past_64_kib_is_dead_lettered(
    storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics
) -> None:
    """As Mosquitto: the oversized packet's sender is dropped (its will published) before its body is read; others go on."""
    big_sender, middling, other = ("lim-" + uuid.uuid4().hex[:8] for _ in range(3))
    for dev in (big_sender, middling, other):
        storage.registry.set_store_readings(dev, True)
    ingestor = build_ingestor(storage, ManualClock(NOW + timedelta(minutes=5)), mqtt_target, IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics))
    ingestor.start()
    birth = json.dumps({"v": 1, "model": "hp-67", "kind": "printer.inkjet", "firmware": "1.0", "slots": [{"slot": "black", "consumable": "ink.black", "unit": "percent", "capacity": 100}]}).encode()
    over_payload = _telemetry(1, 50)[:-1] + b" " * (MAX_PAYLOAD + 100) + b"}"  # valid JSON, past 64 KiB, within the packet limit
    over_packet = _telemetry(1, 50)[:-1] + b" " * (4 * MAX_PACKET_SIZE) + b"}"
    assert MAX_PAYLOAD < len(over_payload) < MAX_PACKET_SIZE - 400 < len(over_packet)
    try:
        publish_all(mqtt_target, [(topics.topic(d, "birth"), birth, False) for d in (big_sender, middling, other)] + [(topics.topic(big_sender, "status"), b'{"v":1,"state":"online"}', False)])
        assert wait_for(lambda: storage.registry.devices([big_sender])[0].online is True)
        topic = topics.topic(big_sender, "telemetry")
        with _raw_device(mqtt_target, big_sender, will=(topics.topic(big_sender, "status"), b'{"v":1,"state":"offline"}')) as sock:
            packet = mqtt_packet(0x32, mqtt_str(topic) + b"\x00\x01" + over_packet)
            sock.sendall(packet[:1000])  # the header announces it all; most of the body never leaves
            assert _closed_by_broker(sock), "the broker kept a client that announced a packet past max_packet_size"
        publish_all(
            mqtt_target,
            [(topics.topic(middling, "telemetry"), over_payload, False)]
            + [(topics.topic(d, "telemetry"), _telemetry(2, 40), False) for d in (big_sender, middling, other)],
        )
        assert wait_for(lambda: any(d.reason == "too_large" for d in storage.dead_letters.recent()))
        assert wait_for(lambda: all(storage.forecasts.history(d, "black", NOW - timedelta(days=1)) for d in (big_sender, middling, other)))
        assert wait_for(lambda: storage.registry.devices([big_sender])[0].online is False), "the will of the dropped client was not published"
        rejected = [d for d in storage.dead_letters.recent() if d.reason == "too_large"]
        assert [d.topic for d in rejected] == [topics.topic(middling, "telemetry")]
        for dev in (big_sender, middling, other):  # only the oversized messages were lost
            assert [round(level, 2) for _, level in storage.forecasts.history(dev, "black", NOW - timedelta(days=1))] == [0.4]
    finally:
        ingestor.stop()


# ---- session expiry (Mosquitto's persistent_client_expiration) ---------------------------------


@pytest.fixture
def secured(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[EmbeddedBroker, EmbeddedAccess]]:
    """The embedded broker with per-device credentials: only such sessions persist (amqtt drops anonymous ones).

    Indirect parameters, if any, are the broker's limits.
    """
    engine = migrated_engine(f"sqlite:///{tmp_path / 'access.db'}")
    access = EmbeddedAccess(engine, ManualClock(NOW))
    access.grant_service("replenish-service", "service-secret")
    access.grant_devices([DeviceSecret("lim-dev", "device-secret")])
    broker = EmbeddedBroker(port=0, access=access, **getattr(request, "param", {}))
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


def _worker_away(broker: EmbeddedBroker, access: EmbeddedAccess) -> tuple[Worker, MqttTarget, str]:
    """A worker subscribed to telemetry and gone again (its session kept), the device `lim-dev`, and its telemetry topic."""
    worker = Worker(MqttTarget(broker.host, broker.port, "replenish-service", "service-secret"), "replenish-gateway-" + uuid.uuid4().hex[:6])
    client = worker.connect()
    client.subscribe(access.topics.every("telemetry"), qos=1)
    time.sleep(0.5)
    Worker.leave(client)
    return worker, MqttTarget(broker.host, broker.port, "lim-dev", "device-secret"), access.topics.topic("lim-dev", "telemetry")


def test_a_persistent_session_is_kept_for_two_weeks_then_deleted(secured: tuple[EmbeddedBroker, EmbeddedAccess], monkeypatch: pytest.MonkeyPatch) -> None:
    worker, device, topic = _worker_away(*secured)
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


# ---- the offline queue (Mosquitto's max_queued_messages, max_queued_bytes) ---------------------


@pytest.mark.parametrize(
    ("secured", "kept"),
    [({"max_queued_messages": 3}, 3), ({"max_queued_bytes": 2 * len(_telemetry(10, 50)) + 5}, 2)],
    indirect=["secured"],
)
def test_an_offline_session_holds_what_its_limits_allow_and_the_rest_is_dropped(secured: tuple[EmbeddedBroker, EmbeddedAccess], kept: int) -> None:
    broker, access = secured
    worker, device, topic = _worker_away(broker, access)
    for seq in range(10, 16):  # queued in the worker's offline session, as far as the limits go
        _publish_as(device, topic, _telemetry(seq, 50))
    client = worker.connect()
    assert wait_for(lambda: len(worker.received) >= kept)
    time.sleep(0.5)  # anything more that was queued would arrive now
    assert worker.received == [_telemetry(seq, 50) for seq in range(10, 10 + kept)], "the oldest are kept, the newest dropped (as Mosquitto)"
    assert broker.dropped == 6 - kept
    client.subscribe(access.topics.every("telemetry"), qos=1)
    _publish_as(device, topic, _telemetry(16, 50))  # online again: nothing is held back
    assert wait_for(lambda: worker.received[-1:] == [_telemetry(16, 50)])
    Worker.leave(client)
