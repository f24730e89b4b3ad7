"""The simulated fleet over MQTT: hundreds of devices from one thread, credentials, last wills, a topic namespace."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from firmware_sim import KINDS, Fleet, FleetDevice, Quirks, SimClock, load_credentials
from gateway import MqttTarget, Topics

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def test_a_fleet_of_a_few_hundred_devices_reaches_the_broker(mqtt_target: MqttTarget, topics: Topics, tmp_path: Path) -> None:
    prefix = "fs" + uuid.uuid4().hex[:6]
    n = 240
    seen: dict[str, set[str]] = {}
    offline: set[str] = set()
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        device_id, suffix = msg.topic.split("/")[-2:]
        with lock:
            seen.setdefault(device_id, set()).add(suffix)
            if suffix == "status" and json.loads(msg.payload)["state"] == "offline":
                offline.add(device_id)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=prefix + "-sub")
    sub.on_message = on_message
    sub.connect(mqtt_target.host, mqtt_target.port)
    sub.subscribe(f"{topics.root}/+/+", qos=1)
    sub.loop_start()
    creds = tmp_path / "devices.json"
    creds.write_text(json.dumps({"devices": [{"device_id": f"{prefix}-{i:05d}", "password": f"pw-{i}"} for i in range(0, n, 2)]}))

    kinds = sorted(KINDS)
    devices = [FleetDevice(f"{prefix}-{i:05d}", kind=kinds[i % len(kinds)]) for i in range(n)]
    devices.append(FleetDevice(f"{prefix}-flaky", kind="coffee"))
    fleet = Fleet(
        mqtt_target.host, mqtt_target.port, devices, SimClock(3600.0, START), interval_hours=1.0, seed=3,
        credentials=load_credentials(creds), quirks=Quirks(p_offline=0.0, p_reboot=0.0), wave_size=60, wave_interval_s=0.05, namespace=topics.namespace,
    )
    flaky = fleet.nodes[f"{prefix}-flaky"].device
    flaky.next_offline = flaky.t + 3 * 3600.0  # one offline spell: the broker must publish its will
    try:
        fleet.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                done = sum(1 for k, v in seen.items() if k.startswith(prefix) and {"birth", "status", "telemetry"} <= v)
                if done == n + 1 and f"{prefix}-flaky" in offline:
                    break
            time.sleep(0.1)
    finally:
        fleet.stop()
        sub.disconnect()
        sub.loop_stop()
        time.sleep(1.0)  # let the broker finish closing the sessions before the fixture stops it
    assert done == n + 1, f"{done} of {n + 1} devices delivered birth, status and telemetry; stats {fleet.stats}"
    assert f"{prefix}-flaky" in offline, "an offline spell drops the connection and the broker publishes the last will"
    assert fleet.stats["refused"] == 0


def test_the_embedded_brokers_subscriptions_survive_a_subscribe_during_a_broadcast() -> None:
    """amqtt walks its subscriptions while awaiting each ACL check; one added meanwhile must not end the walk."""
    from gateway.mqtt.embedded_auth import SnapshotDict

    subs = SnapshotDict({"a/+": [1], "b/#": [2]})
    walked = []
    for key, value in subs.items():
        subs[f"{key}/new"] = value  # a client subscribing while a message is broadcast
        walked.append(key)
    for key in subs:
        del subs[key]  # a session's subscriptions removed while they are walked
    assert walked == ["a/+", "b/#"] and subs == {}
