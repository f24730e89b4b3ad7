"""A gateway process killed mid-stream and restarted stores every reading exactly once (SPEC 3)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

from gateway import Birth, GatewayStorage, SlotSpec, make_engine
from tests.helpers import migrated
from tests.infra.test_ingest_workers import Worker, consent, publish, stored, wait_stored


def test_sigkill_mid_stream_then_restart_stores_every_reading_once(pg_database_url: str, mosquitto_url: str) -> None:
    url = migrated(pg_database_url)
    tag = uuid.uuid4().hex[:8]
    prefix, client_id = f"rs{tag}-", f"gw-{tag}"
    devices = [f"{prefix}{i:02d}" for i in range(30)]
    consent(url, devices)
    store = GatewayStorage.on(make_engine(url))
    birth = Birth("hp-67", "printer.inkjet", "1.0", (SlotSpec("black", "ink.black", "percent", 100.0),))
    for d in devices:
        store.registry.record_birth(d, birth, datetime.now(UTC))
    store.engine.dispose()
    per_device, rate = 150, 1000.0  # 4,500 QoS 1 messages over about 4.5 s
    first = Worker(url, mosquitto_url, client_id)
    second = Worker(url, mosquitto_url, client_id)  # imported and waiting: the restart takes milliseconds
    publisher = threading.Thread(target=publish, args=(mosquitto_url, devices, per_device, rate))
    try:
        first.start()
        publisher.start()
        deadline = time.monotonic() + 20
        while stored(url, prefix)[0] < 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.kill()  # mid-stream: the publishers go on while no gateway is connected
        at_kill = stored(url, prefix)[0]
        time.sleep(0.3)
        second.start()  # same client id: the broker redelivers everything not acknowledged
        assert publisher.is_alive(), "the publishers finished before the crash; nothing was mid-stream"
        publisher.join(60)
        rows, keys = wait_stored(url, prefix, len(devices) * per_device)
        second.stop()
    finally:
        for w in (first, second):
            if w.proc.poll() is None:
                w.kill()
    assert 0 < at_kill < len(devices) * per_device
    assert keys == len(devices) * per_device, f"lost {len(devices) * per_device - keys} readings"
    assert rows == keys, f"{rows - keys} readings stored twice"
