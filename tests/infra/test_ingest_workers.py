"""Gateway workers as real processes on a real Mosquitto: a shared subscription deals telemetry between them.

The broker is the machine's Mosquitto binary with its default limits (1000 queued messages per
offline session, 20 in flight for 3.1.1), started on a free port for this module (`mosquitto_url`),
so that the queue limits are the defaults whatever the machine's broker is configured with.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import sqlalchemy as sa

from gateway import GatewayStorage, MqttTarget, make_engine
from gateway.mqtt import new_client
from gateway.protocol import topic_for
from tests.helpers import ROOT, migrated

# One gateway worker: waits for "go" on stdin, ingests, and on the next line stops and reports
# how many telemetry messages it handled. SIGKILL is the crash.
WORKER = """
import sys, time
from prometheus_client import REGISTRY
from gateway import GatewayStorage, IngestOptions, MqttTarget, WallClock, make_engine
from replenish.bootstrap import build_ingestor
db, url, client_id, share = sys.argv[1:5]
options = IngestOptions(client_id=client_id, batch_size=200, batch_wait=0.02, share_group=share or None)
ingestor = build_ingestor(GatewayStorage.on(make_engine(db)), WallClock(), MqttTarget.from_url(url), options)
sys.stdin.readline()
ingestor.start()
print("ready", flush=True)
sys.stdin.readline()
ingestor.stop()
print("handled", int(REGISTRY.get_sample_value("replenish_gateway_messages_total", {"kind": "telemetry"}) or 0), flush=True)
"""


class Worker:
    """A gateway worker process, imported and waiting, so that starting it takes milliseconds."""

    def __init__(self, db_url: str, mqtt_url: str, client_id: str, share_group: str = "") -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, db_url, mqtt_url, client_id, share_group],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )

    def start(self) -> None:
        """Connect and subscribe; returns once the worker is subscribed."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        """Store what was received, disconnect; returns the telemetry messages it handled."""
        out, _ = self.proc.communicate("stop\n", timeout=60)
        return int(out.split()[-1])

    def kill(self) -> None:
        """Crash: SIGKILL, nothing flushed, nothing acknowledged."""
        self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]


def consent(url: str, devices: list[str]) -> None:
    """Telemetry consent for every device (births may come later, over MQTT)."""
    store = GatewayStorage.on(make_engine(url))
    for d in devices:
        store.registry.set_store_readings(d, True)
    store.engine.dispose()


def publish(mqtt_url: str, devices: list[str], per_device: int, rate: float) -> None:
    """QoS 1 telemetry from one client per 10 devices, each thread paced to its share of `rate`."""
    target = MqttTarget.from_url(mqtt_url)
    groups = [devices[i : i + 10] for i in range(0, len(devices), 10)]

    def run(group: list[str]) -> None:
        client = new_client(target, "pub-" + uuid.uuid4().hex[:10])
        client.connect(target.host, target.port)
        client.loop_start()
        infos: list[mqtt.MQTTMessageInfo] = []
        t0, sent, share = time.monotonic(), 0, rate * len(group) / len(devices)
        for seq in range(per_device):
            for d in group:
                doc = {"v": 1, "seq": seq, "ts": f"2026-11-01T{seq // 3600:02d}:{seq // 60 % 60:02d}:{seq % 60:02d}+00:00", "levels": {"black": 100 - seq % 100}}
                infos.append(client.publish(topic_for(d, "telemetry"), json.dumps(doc), qos=1))
                sent += 1
            time.sleep(max(t0 + sent / share - time.monotonic(), 0))
        for info in infos:
            info.wait_for_publish(30)
        client.disconnect()
        client.loop_stop()

    threads = [threading.Thread(target=run, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def stored(url: str, prefix: str) -> tuple[int, int]:
    """(rows, distinct (device, seq)) of the devices with this prefix."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM gw_readings WHERE device_id LIKE :p"), {"p": prefix + "%"}).scalar_one()
        keys = conn.execute(
            sa.text("SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM gw_readings WHERE device_id LIKE :p) AS k"), {"p": prefix + "%"}
        ).scalar_one()
    engine.dispose()
    return int(rows), int(keys)


def wait_stored(url: str, prefix: str, expected: int, timeout: float = 30.0) -> tuple[int, int]:
    """Poll until `expected` rows of the prefix are stored, or the timeout."""
    deadline = time.monotonic() + timeout
    while stored(url, prefix)[0] < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # a duplicate still in flight would land now
    return stored(url, prefix)


BIRTH = {"v": 1, "model": "hp-67", "kind": "printer.inkjet", "firmware": "1.0", "slots": [{"slot": "black", "consumable": "ink.black", "unit": "percent", "capacity": 100}]}


def test_two_workers_share_telemetry_without_loss_or_duplicates(pg_database_url: str, mosquitto_url: str) -> None:
    url = migrated(pg_database_url)
    tag = uuid.uuid4().hex[:8]
    prefix, group = f"sh{tag}-", f"g{tag}"
    devices = [f"{prefix}{i:02d}" for i in range(30)]
    consent(url, devices)
    workers = [Worker(url, mosquitto_url, f"gw-{tag}-{n}", group) for n in (1, 2)]
    try:
        for w in workers:
            w.start()
        # Every worker gets every birth (plain subscription): both create the same slots at once.
        target = MqttTarget.from_url(mosquitto_url)
        client = new_client(target, "birth-" + tag)
        client.connect(target.host, target.port)
        client.loop_start()
        for d in devices:
            client.publish(topic_for(d, "birth"), json.dumps(BIRTH), qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        store = GatewayStorage.on(make_engine(url))
        deadline = time.monotonic() + 20
        while len(store.registry.slots(devices)) < len(devices) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(store.registry.slots(devices)) == len(devices)
        store.engine.dispose()
        per_device = 100
        publish(mosquitto_url, devices, per_device, rate=1500)
        rows, keys = wait_stored(url, prefix, len(devices) * per_device)
        handled = [w.stop() for w in workers]
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.kill()
    assert keys == len(devices) * per_device, "lost readings"
    assert rows == keys, "duplicated readings"
    assert all(h > 0 for h in handled), f"a worker got no share: {handled}"
    assert sum(handled) >= len(devices) * per_device
