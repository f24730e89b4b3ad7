"""Poison never stalls ingest (SPEC 3): what the database refuses is isolated at once, kept as bytes, and the rest is stored.

The classification of a failed write (`failure_kind`) has known answers on exceptions built here,
and is checked against errors the test's database really raises. Then the writer path is given a
batch the database refuses, and a stream of valid messages from several devices carries poison
of every kind we know of. tests/infra/test_poison_on_postgres.py runs the same on PostgreSQL
and Mosquitto.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Dialect, Engine

import gateway.services.ingest as ingest
import gateway.services.pipeline as pipeline
from gateway import Birth, GatewayStorage, IngestOptions, MqttTarget, SlotSpec, TelemetryIn, Topics, UTCDateTime, make_engine
from gateway.clock import ManualClock
from gateway.mqtt import Delivery
from gateway.protocol import Telemetry
from gateway.services.ingest import failure_kind
from gateway.services.pipeline import BirthOp, RejectOp, StatusOp, TelemetryRun
from gateway.storage.dead_letters import printable
from gateway.storage.engine import normalise_db_url
from replenish.bootstrap import build_ingestor
from tests.helpers import migrate_to, mqtt_packet, mqtt_str, publish_all, wait_for

START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = START + timedelta(days=3)
H = timedelta(hours=1)
BIRTH = Birth("hp-67", "printer.inkjet", "1.0", (SlotSpec("black", "ink.black", "percent", 100.0), SlotSpec("schwärz", "ink.black", "percent", 100.0)))
SQLITE = sa.create_engine("sqlite://").dialect
PG = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none").dialect  # never connects


def _unicode_error() -> UnicodeEncodeError:
    return UnicodeEncodeError("utf-8", "a\ud800", 1, 2, "surrogates not allowed")


# ---------------------------------------------------------------- the rule, on exceptions built here


@pytest.mark.parametrize(
    ("dialect", "exc", "kind"),
    [
        # What the write carried: some message is poison.
        (PG, psycopg.errors.CharacterNotInRepertoire('invalid byte sequence for encoding "UTF8": 0x00'), "data"),  # COPY, raw cursor
        (PG, sa.exc.DataError("INSERT", {}, psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")), "data"),
        (PG, sa.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")), "data"),
        (PG, psycopg.errors.StringDataRightTruncation("value too long for type character varying(64)"), "data"),
        (PG, sa.exc.ProgrammingError("INSERT", {}, psycopg.errors.UndefinedTable('relation "x" does not exist')), "data"),
        (PG, _unicode_error(), "data"),  # psycopg encoding an unpaired surrogate
        (SQLITE, _unicode_error(), "data"),
        (SQLITE, sa.exc.StatementError("bind", "INSERT", {}, _unicode_error()), "data"),
        (SQLITE, sqlite3.ProgrammingError("Error binding parameter 1: type 'object' is not supported"), "data"),
        (SQLITE, sqlite3.IntegrityError("UNIQUE constraint failed: gw_slots.device_id, gw_slots.slot_id"), "data"),
        (SQLITE, sqlite3.DataError("string or blob too big"), "data"),
        (SQLITE, OverflowError("Python int too large to convert to SQLite INTEGER"), "data"),
        (SQLITE, sa.exc.StatementError("bind", "INSERT", {}, ValueError("naive datetime given to a UTC column")), "data"),
        # The database cannot take any write now: wait and retry the same.
        (PG, sa.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection unexpectedly"), connection_invalidated=True), "connection"),
        (PG, sa.exc.DataError("INSERT", {}, psycopg.DataError("x"), connection_invalidated=True), "connection"),  # invalidation wins
        (PG, psycopg.OperationalError("connection failed: Connection refused"), "connection"),
        (PG, psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), "connection"),
        (PG, psycopg.errors.DeadlockDetected("deadlock detected"), "connection"),
        (PG, psycopg.errors.AdminShutdown("terminating connection due to administrator command"), "connection"),
        (PG, psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), "connection"),
        (PG, psycopg.InterfaceError("the connection is closed"), "connection"),
        (PG, sa.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"), "connection"),
        (SQLITE, sqlite3.OperationalError("database is locked"), "connection"),
        (SQLITE, sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")), "connection"),
        (SQLITE, sqlite3.OperationalError("disk I/O error"), "connection"),
        (SQLITE, sqlite3.ProgrammingError("Cannot operate on a closed database."), "connection"),
        # Anything else.
        (PG, psycopg.NotSupportedError("not supported"), "other"),
        (SQLITE, KeyError("black"), "other"),
        (SQLITE, RuntimeError("a bug"), "other"),
    ],
)
def test_a_failed_write_is_classified_by_the_drivers_error_class(dialect: Dialect, exc: BaseException, kind: str) -> None:
    assert failure_kind(exc, dialect) == kind


# ---------------------------------------------------------------- the rule, on errors the database raises


def _msg(device: str, seq: int, levels: dict[str, float | str | None]) -> TelemetryIn:
    return TelemetryIn(device, Telemetry(seq, START + seq * H, levels), NOW)


def _device(storage: GatewayStorage, device: str) -> None:
    storage.registry.record_birth(device, BIRTH, NOW)
    storage.registry.set_store_readings(device, True)


def _raised(call: object) -> BaseException:
    try:
        call()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - what the database raised is the point
        return exc
    raise AssertionError("the database took it")


def _refused_slot_ids(engine: Engine) -> list[str]:
    """Slot ids the database cannot take: an unpaired surrogate anywhere; NUL on PostgreSQL (SQLite keeps it)."""
    return ["a\ud800"] + (["a\x00b"] if engine.dialect.name == "postgresql" else [])


def test_what_the_database_refuses_is_data_and_a_lock_it_cannot_get_is_connection(storage: GatewayStorage, engine: Engine, db_url: str) -> None:
    _device(storage, "real-1")
    for slot in _refused_slot_ids(engine):  # through the hot path's raw cursors
        exc = _raised(lambda slot=slot: storage.telemetry.store([_msg("real-1", 1, {slot: 40.0})]))
        assert failure_kind(exc, engine.dialect) == "data", repr(exc)
    exc = _raised(lambda: storage.registry.record_birth("real-2", Birth("m\ud800", "k", "1", BIRTH.slots), NOW))  # through the ORM
    assert failure_kind(exc, engine.dialect) == "data", repr(exc)
    with engine.begin() as conn:  # a constraint
        conn.execute(sa.text("INSERT INTO gw_cursors (name, position) VALUES ('dup', 1)"))

    def again() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO gw_cursors (name, position) VALUES ('dup', 2)"))

    exc = _raised(again)
    assert failure_kind(exc, engine.dialect) == "data", repr(exc)
    with _locked(db_url) as (impatient, _):
        exc = _raised(lambda: impatient.telemetry.store([_msg("real-1", 2, {"black": 40.0})]))
        assert failure_kind(exc, engine.dialect) == "connection", repr(exc)
    away = make_engine(_unreachable(db_url))
    exc = _raised(lambda: away.connect())
    assert failure_kind(exc, away.dialect) == "connection", repr(exc)
    away.dispose()


def _unreachable(db_url: str) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:////nonexistent-{uuid.uuid4().hex}/x.db"
    return "postgresql://postgres@127.0.0.1:1/none"  # nothing listens on port 1


@contextmanager
def _locked(db_url: str) -> Iterator[tuple[GatewayStorage, Callable[[], None]]]:
    """Storage whose writes give up after 50 ms, and gw_readings locked by another connection until the call given along (or the end)."""
    release = threading.Event()
    taken = threading.Event()
    url = normalise_db_url(db_url)
    if url.startswith("sqlite"):
        impatient = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 0.05})

        def hold() -> None:
            conn = sqlite3.connect(sa.make_url(url).database, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            taken.set()
            release.wait(30)
            conn.execute("ROLLBACK")
            conn.close()

    else:
        impatient = sa.create_engine(url, connect_args={"options": "-c lock_timeout=50"})

        def hold() -> None:
            u = sa.make_url(url)
            with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database) as conn:
                conn.execute("LOCK TABLE gw_readings IN ACCESS EXCLUSIVE MODE")
                taken.set()
                release.wait(30)
                conn.rollback()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(10)

    def let_go() -> None:
        release.set()
        holder.join(10)

    try:
        yield GatewayStorage.on(impatient), let_go
    finally:
        let_go()
        impatient.dispose()


# ---------------------------------------------------------------- the writer path, given a batch


def _delivery(topic: str, payload: bytes) -> Delivery:
    return Delivery(topic, payload, 0, NOW, 1, time.monotonic())


def _readings(engine: Engine, device: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT slot_id, seq FROM gw_readings WHERE device_id = :d ORDER BY seq, slot_id"), {"d": device})]  # type: ignore[misc]


def _quarantined(error: str) -> float:
    return REGISTRY.get_sample_value("replenish_gateway_quarantined_total", {"error": error}) or 0.0


def _no_sleeping(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Ingest's own `time.sleep` records its pauses (and does not pause); the rest of `time` is the real one."""
    pauses: list[float] = []
    monkeypatch.setattr(ingest, "time", types.SimpleNamespace(sleep=pauses.append, monotonic=time.monotonic))
    return pauses


def test_a_batch_the_database_refuses_is_isolated_at_once_without_a_pause(
    storage: GatewayStorage, engine: Engine, mqtt_target: MqttTarget, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = ["iso-a", "iso-b"]
    for d in devices:
        _device(storage, d)
    ingestor = build_ingestor(storage, ManualClock(NOW), mqtt_target, IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics))
    pauses = _no_sleeping(monkeypatch)
    refused = _refused_slot_ids(engine)
    deliveries, messages, poison = [], [], []
    surrogates = 0
    for seq in range(1, 201):
        device = devices[seq % 2]
        bad = seq % 67 == 0  # two of them, spread through the run
        slot = refused[seq % len(refused)] if bad else "black"
        payload = json.dumps({"v": 1, "seq": seq, "levels": {slot: 50}, "poison": bad}).encode()
        deliveries.append(_delivery(topics.topic(device, "telemetry"), payload))
        messages.append(_msg(device, seq, {slot: 50.0}))
        if bad:
            poison.append(payload)
            surrogates += "\ud800" in slot
    run = TelemetryRun(deliveries, messages, storage.telemetry.prepare(messages))
    odd_topic = topics.topic("iso-a", "telemetry").replace("iso-a", "iso\x00a\u202e")
    junk = b'\x00{"v": 1}\xff\xfe'
    rejected = RejectOp(_delivery(odd_topic, junk), "bad_topic", "not a protocol v1 device topic")
    bad_birth = BirthOp(_delivery(topics.topic("iso-c", "birth"), b'{"model": "m\\ud800"}'), "iso-c", Birth("m\ud800", "k", "1", BIRTH.slots))
    status = StatusOp(_delivery(topics.topic("iso-a", "status"), b'{"v": 1, "state": "online"}'), "iso-a", True)
    before = _quarantined("UnicodeEncodeError")
    t0 = time.monotonic()
    ingestor._store([rejected, run, bad_birth, status])
    took = time.monotonic() - t0
    assert pauses == [], "poison must not be waited for"
    assert took < ingest._RETRY_PAUSE / 2, f"isolating took {took:.2f} s"
    for d in devices:  # every good reading stored, once
        assert _readings(engine, d) == [("black", s) for s in range(1, 201) if s % 2 == devices.index(d) and s % 67]
    letters = storage.dead_letters.recent()
    assert sorted((d.reason, d.payload) for d in letters) == sorted([("bad_topic", junk), ("store_failed", bad_birth.delivery.payload)] + [("store_failed", p) for p in poison])
    topic_letter = next(d for d in letters if d.reason == "bad_topic")
    assert topic_letter.topic == printable(odd_topic, 256) and "\\x00" in topic_letter.topic and "\\u202e" in topic_letter.topic
    assert topic_letter.payload_size == len(junk)
    assert all(d.detail and (d.reason != "store_failed" or d.detail.split(":")[0] in ("UnicodeEncodeError", "CharacterNotInRepertoire")) for d in letters)
    assert _quarantined("UnicodeEncodeError") == before + surrogates + 1  # and the birth
    assert storage.registry.devices(["iso-a"])[0].online, "the status after the refused birth was stored"
    assert storage.registry.devices(["iso-c"]) == [], "the refused birth left nothing behind"


def test_a_database_that_cannot_take_writes_is_waited_for_and_nothing_is_quarantined(
    storage: GatewayStorage, db_url: str, mqtt_target: MqttTarget, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    _device(storage, "wait-a")
    messages = [_msg("wait-a", seq, {"black": 90.0 - seq}) for seq in range(1, 11)]
    deliveries = [_delivery(topics.topic("wait-a", "telemetry"), b"{}") for _ in messages]
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # the lock is let go after the third pause: until then each attempt fails on it
        pauses.append(seconds)
        if len(pauses) == 3:
            raise _LetGo

    monkeypatch.setattr(ingest, "time", types.SimpleNamespace(sleep=pause, monotonic=time.monotonic))
    with _locked(db_url) as (impatient, let_go):
        ingestor = build_ingestor(impatient, ManualClock(NOW), mqtt_target, IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics))
        run = TelemetryRun(deliveries, messages, impatient.telemetry.prepare(messages))
        with pytest.raises(_LetGo):
            ingestor._store([run])
        let_go()
        ingestor._store([run])  # what the writer's loop does next, once the database takes writes again
    assert pauses == [ingest._RETRY_PAUSE] * 3
    assert [s for _, s in _readings(storage.engine, "wait-a")] == list(range(1, 11))
    assert storage.dead_letters.recent() == []


class _LetGo(Exception):
    """Ends the writer's wait in the test above, so that the lock can be released."""


# ---------------------------------------------------------------- a stream of valid messages with poison in it


def _publish_raw(target: MqttTarget, topic: bytes, payload: bytes) -> None:
    """One QoS 1 PUBLISH with a topic no client library would send (invalid UTF-8, NUL); the broker may drop the connection."""
    client_id = ("raw-" + uuid.uuid4().hex[:8]).encode()
    flags, tail = 0x02, mqtt_str(client_id)
    if target.username:
        flags |= 0x80
        tail += mqtt_str(target.username)
        if target.password:
            flags |= 0x40
            tail += mqtt_str(target.password)
    connect = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x3c" + tail
    publish = mqtt_str(topic) + b"\x00\x01" + payload
    with socket.create_connection((target.host, target.port), timeout=5) as s:
        s.sendall(mqtt_packet(0x10, connect))
        assert s.recv(4)[:1] == b"\x20", "no CONNACK"
        s.sendall(mqtt_packet(0x32, publish))
        try:
            s.recv(4)  # PUBACK, or b"" when the broker hangs up on the malformed topic
        except OSError:
            pass


def _telemetry(seq: int, levels: dict[str, object], **more: object) -> bytes:
    return json.dumps({"v": 1, "seq": seq, "ts": (START + min(seq, 100) * H).isoformat(), "levels": levels, **more}).encode()


def _poison() -> list[tuple[str, bytes, str]]:
    """(topic suffix, payload, the reason it is dead-lettered with): each payload different, for telling their letters apart."""
    ts = (START + H).isoformat()
    return [
        ("telemetry", b'{"v": 1, "seq": 1, "ts": "' + ts.encode() + b'", "levels": {"black": 50}}\x00', "not_json"),  # a raw NUL after the document
        ("telemetry", b'{"v": 1, "seq": 2, "ts": "' + ts.encode() + b'", "levels": {"bl\x00ack": 50}}', "not_json"),  # a raw NUL in a string
        ("telemetry", _telemetry(3, {"bl\u0000ack": 50}), "bad_field"),  # an escaped NUL in a slot key
        ("telemetry", _telemetry(4, {"black": 50, "x\u0000": "some"}), "bad_field"),
        ("telemetry", b'{"v": 1, "seq": 5, "ts": "' + ts.encode() + b'", "levels": {"\\ud800": 50}}', "not_json"),  # a lone surrogate
        ("telemetry", b'{"v": 1, "seq": 6, "ts": "' + ts.encode() + b'", "levels": {"bl\xffack": 50}}', "not_json"),  # invalid UTF-8
        ("telemetry", _telemetry(7, {"bl\u0007ack": 50}), "bad_field"),  # a bell
        ("telemetry", _telemetry(8, {"bl\tack": 50}), "bad_field"),
        ("telemetry", _telemetry(9, {"bl\u202eack": 50}), "bad_field"),  # a bidi override, escaped
        ("telemetry", _telemetry(10, {"bl\u202eack": 50}).replace(b"\\u202e", "\u202e".encode()), "bad_field"),  # and raw, in UTF-8
        ("telemetry", _telemetry(11, {"bl\u2066ack": 50}), "bad_field"),  # a bidi isolate
        ("telemetry", _telemetry(12, {"black": 50}, events=[{"type": "repl\u202eaced", "slot": "black"}]), "bad_field"),
        ("telemetry", _telemetry(13, {"black": 50}, events=[{"type": "replaced", "slot": "bl\u0000ack"}]), "bad_field"),
        ("telemetry", _telemetry(14, {"black": 50}, device="pois-1\n"), "bad_field"),  # the schema's `$` takes a trailing newline
        ("telemetry", b'{"v": 1, "seq": 15, "ts": "' + ts.encode() + b'", "levels": {"black": 1e400}}', "not_json"),  # a huge number
        ("telemetry", _telemetry(2**64, {"black": 50}), "schema"),
        ("telemetry", b'{"v": 1, "seq": 17, "ts": "' + ts.encode() + b'", "levels": {"black": 50}, "x": ' + b"[" * 2000 + b"]" * 2000 + b"}", "not_json"),  # deep nesting
        ("telemetry", b"[" * 30000 + b"]" * 30000, "not_json"),
        ("birth", json.dumps({"v": 1, "model": "hp-67\u202e", "kind": "printer", "firmware": "1", "slots": [{"slot": "black", "consumable": "ink", "unit": "percent", "capacity": 100}]}).encode(), "bad_field"),
        ("birth", json.dumps({"v": 1, "model": "hp-67", "kind": "printer", "firmware": "1\u0000", "slots": [{"slot": "black", "consumable": "ink", "unit": "percent", "capacity": 100}]}).encode(), "bad_field"),
        ("birth", json.dumps({"v": 1, "model": "hp-67", "kind": "printer", "firmware": "1", "slots": [{"slot": "black", "consumable": "ink\u001b[31m", "unit": "percent", "capacity": 100}]}).encode(), "bad_field"),
        ("status", b'{"v": 1, "state": "online\\u0000"}', "schema"),
        ("telemetry", _telemetry(23, {"gap": 50}), "store_failed"),  # let through by a parser gap (below): refused by the database
        ("telemetry", _telemetry(24, {"gap": 51}), "store_failed"),
    ]


def _leaky(real: object) -> object:
    """parse_telemetry with a gap: a level named `gap` comes out as an id no database takes (an unpaired surrogate)."""

    def parse(payload: bytes, device_id: str | None = None) -> Telemetry:
        t = real(payload, device_id)  # type: ignore[operator]
        if "gap" in t.levels:
            return Telemetry(t.seq, t.ts, {"black": 10.0, "\ud800gap": t.levels["gap"]})
        return t

    return parse


def test_poison_in_a_stream_of_valid_messages_is_dead_lettered_once_and_ingest_goes_on(
    storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "parse_telemetry", _leaky(pipeline.parse_telemetry))
    good = [f"good-{i}-" + uuid.uuid4().hex[:6] for i in range(3)]
    sender = "pois-1"
    for d in [*good, sender]:
        _device(storage, d)
    poison = _poison()
    # The poisoned device also sends valid messages, odd ones among them: a huge level, a non-ASCII slot id.
    valid_from_sender = [(30, {"black": 1e308}), (31, {"black": 2**70}), (32, {"schwärz": 40}), (33, {"black": 20, "schwärz": 30})]
    msgs: list[tuple[str, bytes, bool]] = []
    for seq in range(1, 41):
        msgs += [(topics.topic(d, "telemetry"), _telemetry(seq, {"black": 100 - seq}), False) for d in good]
        if seq <= len(poison):
            suffix, payload, _ = poison[seq - 1]
            msgs.append((topics.topic(sender, suffix), payload, False))
        if seq - 30 in range(len(valid_from_sender)):
            s, levels = valid_from_sender[seq - 30]
            msgs.append((topics.topic(sender, "telemetry"), _telemetry(s, levels), False))
    odd_topics = [
        topics.topic(sender, "telemetry").replace(sender, "pois\x00x").encode(),
        topics.topic(sender, "telemetry").replace(sender, "pois\x01x").encode(),
        topics.topic(sender, "telemetry").encode().replace(sender.encode(), b"pois\xffx"),  # not UTF-8
    ]
    seen = _Observer(mqtt_target, f"{topics.root}/#")
    ingestor = build_ingestor(storage, ManualClock(NOW), mqtt_target, IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics))
    ingestor.start()
    try:
        t0 = time.monotonic()
        publish_all(mqtt_target, msgs[: len(msgs) // 2])
        for topic in odd_topics:
            _publish_raw(mqtt_target, topic, _telemetry(99, {"black": 1}))
        publish_all(mqtt_target, msgs[len(msgs) // 2 :])

        def stored() -> bool:
            return all(len(storage.forecasts.history(d, "black", START)) == 40 for d in good)

        assert wait_for(stored, timeout=20), {d: len(storage.forecasts.history(d, "black", START)) for d in good}
        assert wait_for(lambda: len(storage.dead_letters.recent(1000)) >= len(poison) + len(seen.odd(odd_topics)), timeout=20)
        time.sleep(0.5)  # a second letter for anything would show up now
        took = time.monotonic() - t0
        letters = storage.dead_letters.recent(1000)
        for suffix, payload, reason in poison:  # each once, its bytes as sent
            mine = [d for d in letters if d.payload == payload[:4096]]
            assert [(d.reason, d.topic) for d in mine] == [(reason, topics.topic(sender, suffix))], (payload[:80], [(d.reason, d.detail) for d in mine])
            assert mine[0].payload_size == len(payload)
        delivered = seen.odd(odd_topics)
        assert sorted(d.topic for d in letters if d.reason == "bad_topic") == sorted(printable(t, 256) for t in delivered)
        assert len(letters) == len(poison) + len(delivered)
        # The sender's valid messages are stored, its poison is not; the gap messages lost their good level with them.
        assert _levels(storage, sender, "black") == [(30, 1.0), (31, 1.0), (33, 0.2)]
        assert _levels(storage, sender, "schwärz") == [(32, 0.4), (33, 0.3)]
        # Ingest goes on.
        publish_all(mqtt_target, [(topics.topic(good[0], "telemetry"), _telemetry(50, {"black": 7}), False)])
        assert wait_for(lambda: len(storage.forecasts.history(good[0], "black", START)) == 41, timeout=20)
        assert took < 20
    finally:
        ingestor.stop()
        seen.stop()


def _levels(storage: GatewayStorage, device: str, slot: str) -> list[tuple[int, float]]:
    with storage.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT seq, level FROM gw_readings WHERE device_id = :d AND slot_id = :s ORDER BY seq"), {"d": device, "s": slot})
        return [(int(seq), round(level, 6)) for seq, level in rows]


class _Observer:
    """A subscriber beside ingest: which of the odd topics the broker delivered at all (Mosquitto refuses them, the embedded broker some)."""

    def __init__(self, target: MqttTarget, topic_filter: str) -> None:
        self.topics: list[bytes] = []
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="obs-" + uuid.uuid4().hex[:8], protocol=mqtt.MQTTv311)
        if target.username:
            self._client.username_pw_set(target.username, target.password)
        self._client.on_message = self._on_message
        self._client.connect(target.host, target.port)
        self._client.loop_start()
        self._client.subscribe(topic_filter, qos=1)
        time.sleep(0.3)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self.topics.append(msg.topic.encode())
        except UnicodeDecodeError:
            self.topics.append(b"\xff?")

    def odd(self, odd_topics: list[bytes]) -> list[str]:
        """The odd topics delivered, as ingest's connection decodes them."""
        return [t.decode("utf-8", "replace") for t in odd_topics if t in self.topics]

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# ---------------------------------------------------------------- the migration


def test_revision_0005_keeps_old_dead_letters_as_their_bytes_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate_to(engine, "0004")
    old = ['{"v": 1, "levels": {"bl\ufffdck": 1}}', "naïve ☕ text", ""]
    before = sa.table("gw_dead_letters", *(sa.column(c) for c in ("topic", "reason", "detail", "payload")), sa.column("received_at", UTCDateTime()))
    with engine.begin() as conn:
        conn.execute(before.insert(), [{"received_at": NOW + i * H, "topic": f"a/{i}", "reason": "not_json", "detail": "", "payload": t} for i, t in enumerate(old)])
    migrate_to(engine, "head")
    storage = GatewayStorage.on(engine)
    kept = sorted(storage.dead_letters.recent(), key=lambda d: d.topic)
    assert [(d.payload, d.payload_size) for d in kept] == [(t.encode(), None) for t in old]
    storage.dead_letters.add("a/3", b"\x00\xffok", "not_json", "raw NUL", NOW)
    migrate_to(engine, "0004", downgrade=True)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT topic, payload FROM gw_dead_letters")).fetchall())
    assert rows == {"a/0": old[0], "a/1": old[1], "a/2": old[2], "a/3": "\ufffd\ufffdok"}
    migrate_to(engine, "head")
    assert sorted(d.payload for d in GatewayStorage.on(engine).dead_letters.recent()) == sorted([t.encode() for t in old] + ["\ufffd\ufffdok".encode()])
    engine.dispose()
