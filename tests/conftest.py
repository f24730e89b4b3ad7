"""Shared fixtures: real databases (SQLite file, PostgreSQL) and real brokers (embedded, Mosquitto)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import EmbeddedBroker, MqttTarget, free_port, make_engine
from replenish._db import migrate

PG_URL = os.environ.get("REPLENISH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_URL = os.environ.get("REPLENISH_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_CTRL = "/usr/bin/mosquitto_ctrl"
DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards; fails when the server is away."""
    admin = sa.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = "t_" + uuid.uuid4().hex[:12]
    conninfo = f"host={admin.host} port={admin.port or 5432} user={admin.username} dbname={admin.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:  # fails loudly when PostgreSQL is missing
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.infra)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.infra)])
def mqtt_target(request: pytest.FixtureRequest) -> Iterator[MqttTarget]:
    """A broker of each kind: the embedded one on a free port, and the machine's Mosquitto."""
    if request.param == "embedded":
        broker = EmbeddedBroker(port=0)
        broker.start()
        yield broker.target
        broker.stop()
    else:
        yield MqttTarget.from_url(MQTT_URL)


@dataclass(frozen=True)
class DynsecBroker:
    """A Mosquitto with the dynamic-security plugin, started by the test on its own port."""

    port: int
    admin: MqttTarget

    def target(self, username: str | None = None, password: str | None = None) -> MqttTarget:
        """Where to connect, as whom."""
        return MqttTarget("127.0.0.1", self.port, username, password)


@pytest.fixture
def dynsec_broker() -> Iterator[DynsecBroker]:
    """A second Mosquitto (the machine's binary) with dynamic security, no anonymous clients; stopped after."""
    # Mosquitto drops to its own user: its folder must be reachable (pytest's tmp_path is 0700)
    # and writable, since the plugin saves its file on every change.
    folder = Path(tempfile.mkdtemp(prefix="replenish-mosquitto-"))
    folder.chmod(0o777)
    config_file = folder / "dynamic-security.json"
    subprocess.run([MOSQUITTO_CTRL, "dynsec", "init", str(config_file), "admin", "admin-secret"], check=True, capture_output=True)
    config_file.chmod(0o666)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
        f"plugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {config_file}\n"
    )
    log = folder / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([MOSQUITTO, "-v", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {log.read_text()}")
        time.sleep(0.05)
    try:
        yield DynsecBroker(port, MqttTarget("127.0.0.1", port, "admin", "admin-secret"))
    finally:
        proc.terminate()
        proc.wait(10)
        print(log.read_text()[-3000:])  # shown when the test failed
        shutil.rmtree(folder, ignore_errors=True)


def clear_retained(target: MqttTarget, topic_filter: str = "replenish/v1/devices/#", quiet_for: float = 1.0) -> int:
    """Remove every retained message under a filter (an empty retained publish per topic); returns how many."""
    seen: set[str] = set()
    last = [time.monotonic()]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="clear-" + uuid.uuid4().hex[:8], protocol=mqtt.MQTTv311)
    if target.username:
        client.username_pw_set(target.username, target.password)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            seen.add(msg.topic)
            last[0] = time.monotonic()

    client.on_message = on_message
    client.connect(target.host, target.port)
    client.loop_start()
    client.subscribe(topic_filter, qos=1)  # QoS 0 deliveries are dropped when the queue is long
    while time.monotonic() - last[0] < quiet_for:
        time.sleep(0.1)
    for topic in seen:
        client.publish(topic, b"", qos=1, retain=True)
    client.publish("replenish/clear-retained/done", b"", qos=1).wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    return len(seen)


@pytest.fixture(scope="session", autouse=True)
def machine_broker_without_leftovers() -> Iterator[None]:
    """The machine's Mosquitto keeps retained messages across runs (persistence on): clear device topics before and after.

    A gateway receives every retained birth on connecting; tens of thousands left by earlier runs
    would make a test's own messages wait behind them.
    """
    target = MqttTarget.from_url(MQTT_URL)
    try:
        clear_retained(target)
    except OSError:
        if os.environ.get("REPLENISH_REQUIRE_INFRA") == "1":
            raise  # CI: the machine's broker must be there
    yield
    try:
        clear_retained(target)
    except OSError:
        pass  # reported by the tests that needed it
