"""Hostile devices' generated messages among valid telemetry from consenting devices (SPEC 3; issue 10, item 8).

Each hypothesis example is one stream: a hostile value (tests/payloads.py: raw and escaped NUL, lone
surrogates, invalid UTF-8, controls and bidi characters, integers of hundreds of digits, 1e400,
NaN, nesting a thousand levels deep, long strings) in every field of every message a device sends
(birth, telemetry, status), whole hostile payloads, and odd topics, from three registered and
consenting hostile devices, interleaved with readings from four good ones. Every message is
accounted for: each good reading is stored once, each hostile message is dead-lettered once with
the reason the parser gives it (never `parse_error` or `store_failed`), or, valid after all, its
readings are stored within range. No good device's record changes, and ingest stays alive.
tests/infra/test_service_layer_again.py runs it again on PostgreSQL and Mosquitto.

The examples are derandomized: both backends get the same streams and a failure reproduces on the
next run. They are generated first and sent afterwards (see `_generated`), so nothing shrinks a
failing stream; the failure names the message and its reason.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings

from gateway import GatewayStorage, IngestOptions, InvalidMessage, MqttTarget, Topics, parse_birth, parse_status, parse_telemetry
from gateway.clock import ManualClock
from gateway.storage.dead_letters import printable
from replenish.bootstrap import build_ingestor
from tests.helpers import publish_all, wait_for
from tests.payloads import BIRTH, HOSTILE_PATHS, REASONS, hostile_document, hostile_keys, hostile_payloads, hostile_values

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
GOOD = [f"good-{i}" for i in range(4)]
HOSTILE = [f"hostile-{i}" for i in range(3)]
MAX_SENT = 66_000  # bytes of payload: past 64 KiB (too_large) and within the brokers' 66 KiB packets with any topic here
PER_EXAMPLE = 8  # readings of each good device in each example
TEMPLATES: dict[str, dict[str, object]] = {
    "birth": BIRTH,
    "telemetry": {"v": 1, "seq": 7, "ts": (NOW - timedelta(hours=1)).isoformat(), "levels": {"toner": 40, "waste": 10}, "events": [{"type": "replaced", "slot": "toner", "level": 100}]},
    "status": {"v": 1, "state": "online"},
}
# Device ids no topic may carry, a level too many or too few: only those on a subscribed filter reach ingest, as bad_topic.
ODD_IDS = ["", "x" * 65, "dev.ice", "dev ice", "dévice", "dev\u202eice", "dev\u2066ice", "😀", "a/b", "hostile-0/extra"]
PARSER_REASONS = REASONS | {"bad_topic"}  # a parser bug (parse_error) or a message the database refused (store_failed) is a finding
PARSE = {"birth": parse_birth, "telemetry": parse_telemetry, "status": parse_status}


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, str, bytes]]:
    """(hostile device or odd id, topic suffix, payload): every field of every message once, whole payloads, odd topics."""
    out = []
    for kind, paths in HOSTILE_PATHS.items():
        for path in paths:
            out.append((kind, hostile_document(TEMPLATES[kind], path, draw(hostile_values), draw(hostile_keys))))
    out += [(draw(st.sampled_from(["telemetry", "telemetry", "birth", "status"])), draw(hostile_payloads)) for _ in range(6)]
    odd = draw(st.lists(st.sampled_from(ODD_IDS), min_size=3, max_size=3, unique=True))
    sent = [(HOSTILE[i % len(HOSTILE)], kind, payload) for i, (kind, payload) in enumerate(out)]
    sent += [(f"?{device}", "telemetry", draw(hostile_payloads)) for device in odd]
    # Cut to what fits a packet: a larger one gets its sender disconnected by either broker before
    # anything reaches ingest (docs/protocol.md, "packet"; tests/service/test_broker_limits.py).
    return [(device, kind, payload[:MAX_SENT]) for device, kind, payload in sent]


def _generated() -> list[list[tuple[str, str, bytes]]]:
    """The streams, generated first and sent after: hypothesis raises the recursion limit while it runs a test, for the whole
    process and so for ingest's threads too, and a document nested a thousand deep must meet the limit ingest runs with."""
    out = []

    @settings(max_examples=6, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(stream=streams())
    def collect(stream: list[tuple[str, str, bytes]]) -> None:
        out.append(stream)

    collect()
    return out


def _expected(kind: str, payload: bytes, device: str) -> tuple[str | None, object]:
    """What the gateway's parsers make of a message: (reason, None) when rejected, (None, the parsed value) when valid."""
    if kind == "birth" and not payload:
        return None, None  # an empty retained birth clears the retained one: nothing to store
    try:
        parsed = PARSE[kind](payload, device)
    except InvalidMessage as exc:
        return exc.reason, None
    except Exception as exc:  # noqa: BLE001 - a parser bug: ingest letters it as parse_error, which fails below
        return "parse_error", exc
    if kind == "telemetry" and parsed.ts - NOW > timedelta(days=7):  # type: ignore[union-attr]
        return "bad_timestamp", None
    return None, parsed


def _good(device: str, seq: int) -> bytes:
    return json.dumps({"v": 1, "seq": seq, "ts": (NOW - timedelta(days=2) + seq * timedelta(minutes=1)).isoformat(), "levels": {"toner": 100 - seq % 100}}).encode()


def _readings(storage: GatewayStorage, devices: list[str]) -> list[tuple[str, str, int, float]]:
    with storage.engine.connect() as conn:
        q = sa.text("SELECT device_id, slot_id, seq, level FROM gw_readings WHERE device_id IN :d").bindparams(sa.bindparam("d", expanding=True))
        return [(d, s, int(seq), round(level, 6) if math.isfinite(level) else level) for d, s, seq, level in conn.execute(q, {"d": devices})]


def _records(storage: GatewayStorage, devices: list[str]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The good devices' rows that no reading changes (ingest only appends; settle does not run here)."""
    moving = {"last_seen_at", "clock_offset_s", "clock_offset_at"}
    rows = [d.model_dump(exclude=moving) for d in storage.registry.devices(devices)]
    return rows, [s.model_dump() for s in storage.registry.slots(devices)]


@pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")  # a stream is ~100 messages
def test_hostile_messages_in_a_valid_stream_are_dead_lettered_and_every_valid_reading_stored_once(
    storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics
) -> None:
    birth = parse_birth(json.dumps(BIRTH).encode())
    for d in GOOD + HOSTILE:
        storage.registry.record_birth(d, birth, NOW - timedelta(days=3))
        storage.registry.set_store_readings(d, True)
    before = _records(storage, GOOD)
    options = IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics)
    subscriptions = options.subscriptions()
    ingestor = build_ingestor(storage, ManualClock(NOW), mqtt_target, options)
    ingestor.start()
    letters: Counter[tuple[str, str, bytes, int | None]] = Counter()  # what gw_dead_letters must hold, all examples so far
    good: set[tuple[str, str, int, float]] = set()
    slots_of_hostile = {"toner", "waste"}
    seq = iter(range(1, 10**6))

    def check(stream: list[tuple[str, str, bytes]]) -> None:
        msgs: list[tuple[str, bytes, bool]] = []
        share = -(-len(stream) // PER_EXAMPLE)  # hostile messages between two rounds of good readings
        for i, s in enumerate(next(seq) for _ in range(PER_EXAMPLE)):
            for d in GOOD:
                msgs.append((topics.topic(d, "telemetry"), _good(d, s), False))
                good.add((d, "toner", s, round((100 - s % 100) / 100, 6)))
            for device, kind, payload in stream[i * share : (i + 1) * share]:
                topic = f"{topics.root}/{device[1:]}/{kind}" if device.startswith("?") else topics.topic(device, kind)
                msgs.append((topic, payload, kind != "telemetry"))
                if device.startswith("?"):
                    if any(mqtt.topic_matches_sub(sub, topic) for sub in subscriptions):
                        letters[(printable(topic, 256), "bad_topic", payload[:4096], len(payload))] += 1  # as the letter escapes it
                    continue
                reason, parsed = _expected(kind, payload, device)
                assert reason is None or reason in PARSER_REASONS, (reason, parsed, payload[:200])
                if reason is not None:
                    letters[(topic, reason, payload[:4096], len(payload))] += 1
                elif kind == "birth" and parsed is not None:
                    slots_of_hostile.update(s.slot_id for s in parsed.slots)  # type: ignore[attr-defined]
        publish_all(mqtt_target, msgs)

        def stored() -> Counter[tuple[str, str, bytes, int | None]]:
            return Counter((d.topic, d.reason, d.payload, d.payload_size) for d in storage.dead_letters.recent(100_000))

        assert wait_for(lambda: len(_readings(storage, GOOD)) == len(good) and sum(stored().values()) >= sum(letters.values()), timeout=30), (
            f"{len(_readings(storage, GOOD))} of {len(good)} good readings, {sum(stored().values())} of {sum(letters.values())} letters"
        )
        assert Counter(_readings(storage, GOOD)) == Counter(good), "a good reading is missing, changed or stored twice"
        found = stored()
        assert found == letters, {"unexpected": found - letters, "missing": letters - found}

    try:
        for stream in _generated():
            check(stream)
        # Ingest is alive: its threads run, and one last good reading arrives.
        assert all(t.is_alive() for t in threading.enumerate() if t.name.startswith("ingest-") and t.name.endswith(options.client_id))
        last = next(seq)
        publish_all(mqtt_target, [(topics.topic(GOOD[0], "telemetry"), _good(GOOD[0], last), False)])
        assert wait_for(lambda: (GOOD[0], "toner", last, round((100 - last % 100) / 100, 6)) in _readings(storage, GOOD), timeout=30)
    finally:
        ingestor.stop()
    assert _records(storage, GOOD) == before, "a good device's record changed"
    for device, slot, s, level in _readings(storage, HOSTILE):  # what hostile devices sent that was valid after all
        assert slot in slots_of_hostile and 0 <= s < 2**63 and math.isfinite(level) and 0.0 <= level <= 1.0, (device, slot, s, level)
    assert Counter((d.topic, d.reason, d.payload, d.payload_size) for d in storage.dead_letters.recent(100_000)) == letters, "a letter came twice"
