"""What tests of every layer share: waiting, publishing, a Mosquitto of the test's own, a PostgreSQL database of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import sqlalchemy as sa

from gateway import MqttTarget, free_port, make_engine
from gateway.mqtt import new_client
from replenish.bootstrap import migrate

PG_URL = os.environ.get("REPLENISH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_URL = os.environ.get("REPLENISH_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_CTRL = "/usr/bin/mosquitto_ctrl"
DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
ROOT = Path(__file__).resolve().parents[1]


def wait_for(cond: Callable[[], object], timeout: float = 20.0, every: float = 0.05) -> bool:
    """Poll until `cond()` is truthy; whether it became so in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return bool(cond())


def mqtt_str(s: str | bytes) -> bytes:
    """An MQTT string: two bytes of length, then the UTF-8 (bytes are taken as they are, valid or not)."""
    raw = s.encode() if isinstance(s, str) else s
    return len(raw).to_bytes(2, "big") + raw


def mqtt_packet(first_byte: int, body: bytes) -> bytes:
    """A raw MQTT packet: the type-and-flags byte, the remaining length (MQTT's variable-length integer), the body."""
    n, length = len(body), bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        length.append(digit | (0x80 if n else 0))
        if not n:
            return bytes((first_byte,)) + bytes(length) + body


def publish_all(target: MqttTarget, msgs: list[tuple[str, bytes, bool]]) -> None:
    """Publish (topic, payload, retain) at QoS 1, each acknowledged, from one client."""
    client = new_client(target, "pub-" + uuid.uuid4().hex[:8])
    client.connect(target.host, target.port)
    client.loop_start()
    for topic, payload, retain in msgs:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def clear_retained(target: MqttTarget, topic_filter: str, quiet_for: float = 0.5) -> int:
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
    client.subscribe(topic_filter, qos=1)
    while time.monotonic() - last[0] < quiet_for:
        time.sleep(0.05)
    for topic in seen:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    return len(seen)


def migrated_engine(url: str) -> sa.Engine:
    """An engine on `url`, its schema migrated."""
    engine = make_engine(url)
    migrate(engine)
    return engine


def migrate_to(engine: sa.Engine, revision: str, downgrade: bool = False) -> None:
    """Upgrade (or downgrade) the engine's database to one Alembic revision, as `replenish migrate` does to head."""
    from alembic import command

    from replenish.storage.migrate import alembic_config

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if downgrade else command.upgrade)(cfg, revision)


def migrated(url: str) -> str:
    """The URL, after creating the schema there."""
    migrated_engine(url).dispose()
    return url


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards; fails when the server is away."""
    admin = sa.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = "t_" + uuid.uuid4().hex[:12]
    conninfo = f"host={admin.host} port={admin.port or 5432} user={admin.username} dbname={admin.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:  # fails loudly when PostgreSQL is missing
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen on {port}: {log.read_text()}")


@contextmanager
def mosquitto(extra_conf: str = "allow_anonymous true\n", setup: Callable[[Path], None] | None = None) -> Iterator[int]:
    """The machine's Mosquitto binary on a free port with a config of the test's own; stopped after. Yields its port.

    `extra_conf` may name `{folder}`, the broker's own folder, where `setup` may first put files.
    """
    # Mosquitto drops to its own user: its folder must be reachable (pytest's tmp_path is 0700)
    # and writable, since a plugin may save its file on every change.
    folder = Path(tempfile.mkdtemp(prefix="replenish-mosquitto-"))
    folder.chmod(0o777)
    if setup is not None:
        setup(folder)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\npersistence false\n" + extra_conf.format(folder=folder))
    log = folder / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([MOSQUITTO, "-v", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, log)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        print(log.read_text()[-3000:])  # shown when the test failed
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class DynsecBroker:
    """A Mosquitto with the dynamic-security plugin, started by the test on its own port."""

    port: int
    admin: MqttTarget

    def target(self, username: str | None = None, password: str | None = None) -> MqttTarget:
        """Where to connect, as whom."""
        return MqttTarget("127.0.0.1", self.port, username, password)


@contextmanager
def dynsec_mosquitto() -> Iterator[DynsecBroker]:
    """A Mosquitto with dynamic security and no anonymous clients, its admin `admin` / `admin-secret`."""

    def init(folder: Path) -> None:
        config_file = folder / "dynamic-security.json"
        subprocess.run([MOSQUITTO_CTRL, "dynsec", "init", str(config_file), "admin", "admin-secret"], check=True, capture_output=True)
        config_file.chmod(0o666)

    conf = f"allow_anonymous false\nplugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {{folder}}/dynamic-security.json\n"
    with mosquitto(conf, init) as port:
        yield DynsecBroker(port, MqttTarget("127.0.0.1", port, "admin", "admin-secret"))
