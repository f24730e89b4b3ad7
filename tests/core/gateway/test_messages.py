"""Protocol v1 parsing: known answers and clear reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.protocol import InvalidMessage, SlotSpec, parse_birth, parse_status, parse_telemetry, parse_topic, topic_for
from gateway.protocol.messages import MAX_DEPTH
from gateway.readings import is_refill, normalise_level


def _j(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_topics_round_trip_and_reject_foreign_ones() -> None:
    assert parse_topic(topic_for("printer-1", "telemetry")).device_id == "printer-1"  # type: ignore[union-attr]
    assert parse_topic("replenish/v1/devices/a/b/telemetry") is None
    assert parse_topic("replenish/v1/devices/bad id/telemetry") is None
    assert parse_topic("other/v1/devices/x/telemetry") is None
    with pytest.raises(ValueError):
        topic_for("x" * 65, "birth")


def test_birth_parses_slots() -> None:
    birth = parse_birth(
        _j({"v": 1, "model": "m", "kind": "printer.inkjet", "firmware": "1", "slots": [{"slot": "black", "consumable": "ink.black", "unit": "percent", "capacity": 100}]})
    )
    assert birth.slots[0] == SlotSpec("black", "ink.black", "percent", 100.0, False)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not_json"),
        (b"[1]", "not_object"),
        (_j({"v": 2}), "bad_version"),
        (_j({"v": 1, "seq": -1, "ts": "2026-01-01T00:00:00Z", "levels": {"a": 1}}), "schema"),
        (_j({"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00Z"}), "schema"),
        (_j({"v": 1, "seq": 1, "ts": "yesterday", "levels": {"a": 1}}), "bad_timestamp"),
        (_j({"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00", "levels": {"a": 1}}), "bad_timestamp"),
        (_j({"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00Z", "levels": {"a": -5}}), "schema"),
        # Python's json writes NaN, but NaN is not JSON (RFC 8259), nor is a number beyond a double's
        # range: both are rejected before any field is read.
        (_j({"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00Z", "levels": {"a": float("nan")}}), "not_json"),
        (b'{"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00Z", "levels": {"a": 1e999}}', "not_json"),
        (b"{" * 70000, "too_large"),
    ],
)
def test_bad_telemetry_is_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as exc:
        parse_telemetry(payload)
    assert exc.value.reason == reason


def test_telemetry_keeps_sentinels_and_events() -> None:
    t = parse_telemetry(
        _j({"v": 1, "seq": 7, "ts": "2026-01-01T10:00:00+01:00", "levels": {"a": 40, "b": "unknown", "c": None}, "events": [{"type": "replaced", "slot": "a", "level": 100}]})
    )
    assert t.ts == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert t.levels == {"a": 40.0, "b": "unknown", "c": None}
    assert t.events[0].slot_id == "a"


def test_status() -> None:
    assert parse_status(_j({"v": 1, "state": "online"})) is True
    with pytest.raises(InvalidMessage):
        parse_status(_j({"v": 1, "state": "asleep"}))


def test_normalisation_units_receptacles_and_refills() -> None:
    pct = SlotSpec("k", "ink", "percent", 100, False)
    grams = SlotSpec("beans", "coffee", "g", 500, False)
    waste = SlotSpec("waste", "toner.waste", "percent", 100, True)
    assert normalise_level(40, pct) == pytest.approx(0.4)
    assert normalise_level(125, grams) == pytest.approx(0.25)
    assert normalise_level(30, waste) == pytest.approx(0.7)  # 30 % full = 70 % headroom
    assert normalise_level("some", pct) is None
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    assert is_refill(0.1, t0, 0.95, t1)
    assert not is_refill(0.4, t0, 0.5, t1)  # quantisation flicker
    assert not is_refill(0.1, t1, 0.95, t0)  # an older message arriving late is no refill


def test_published_schemas_accept_what_the_simulator_and_gateway_send() -> None:
    import random

    from firmware_sim import InkjetPrinter, PrinterProfile
    from gateway.protocol import orders_payload, validator

    printer = InkjetPrinter("sim-1", PrinterProfile(), random.Random(1))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert not list(validator("birth").iter_errors(printer.birth()))
    assert not list(validator("telemetry").iter_errors(printer.telemetry(now, [{"type": "replaced", "slot": "black", "level": 100}])))
    doc = json.loads(orders_payload(now, {"black": {"order_id": "o1", "status": "shipped", "expected_delivery": None}}))
    assert not list(validator("orders").iter_errors(doc))
    parse_birth(json.dumps(printer.birth()).encode())


@pytest.mark.parametrize("kind", ["birth", "telemetry", "status"])
def test_payload_naming_another_device_is_rejected(kind: str) -> None:
    docs = {
        "birth": {"v": 1, "model": "m", "kind": "k", "firmware": "f", "slots": [{"slot": "s", "consumable": "c", "unit": "count", "capacity": 10}]},
        "telemetry": {"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00Z", "levels": {"s": 3}},
        "status": {"v": 1, "state": "online"},
    }
    parse = {"birth": parse_birth, "telemetry": parse_telemetry, "status": parse_status}[kind]
    parse(json.dumps({**docs[kind], "device": "dev-a"}).encode(), "dev-a")  # its own id: accepted
    parse(json.dumps(docs[kind]).encode(), "dev-a")  # no id in the payload: the topic decides
    with pytest.raises(InvalidMessage) as exc:
        parse(json.dumps({**docs[kind], "device": "dev-b"}).encode(), "dev-a")
    assert exc.value.reason == "topic_mismatch"


def test_clock_skew_is_learnt_from_the_least_delayed_message() -> None:
    from datetime import timedelta

    from gateway.readings import MAX_BUFFER_S, corrected_time, estimate_clock_offset

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    ahead = estimate_clock_offset(None, None, [0.2 - 3600], t0)  # device clock an hour ahead, 0.2 s delay
    assert corrected_time(t0 + timedelta(hours=1), ahead, t0 + timedelta(seconds=0.2)) == t0 + timedelta(seconds=0.2)
    # A burst of buffered messages looks later, never earlier: the estimate holds.
    later = t0 + timedelta(hours=5)
    held = estimate_clock_offset(ahead, t0, [0.2 - 3600, -3600 + 4 * 3600], later)
    assert abs(held - ahead) < 0.01 * 5 * 3600 + 1
    # Small skew, and a lag that may be buffering, are left alone; nothing is placed after its arrival.
    assert corrected_time(t0, 30.0, t0 + timedelta(seconds=30)) == t0
    assert corrected_time(t0, 3 * 3600.0, t0 + timedelta(hours=3)) == t0
    assert corrected_time(t0 + timedelta(minutes=1), 0.0, t0) == t0
    # A clock reset to 1970 is older than any buffer: the estimate restarts at once.
    reset = estimate_clock_offset(ahead, t0, [MAX_BUFFER_S * 1000], later)
    assert reset == MAX_BUFFER_S * 1000
    assert corrected_time(later - timedelta(seconds=reset), reset, later) == later


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_timestamps_beyond_datetimes_range_are_rejected_not_raised(ts: str) -> None:
    with pytest.raises(InvalidMessage) as exc:
        parse_telemetry(json.dumps({"v": 1, "seq": 1, "ts": ts, "levels": {"a": 1}}).encode())
    assert exc.value.reason == "bad_timestamp"


# ---- the boot identity (docs/protocol.md, "At most once") ----

_TELEMETRY = {"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00Z", "levels": {"a": 1}}
_BIRTH = {"v": 1, "model": "m", "kind": "k", "firmware": "f", "slots": [{"slot": "a", "consumable": "c", "unit": "count", "capacity": 10}]}


@pytest.mark.parametrize(("boot", "stored"), [(0, "0"), (42, "42"), (2**63 - 1, "9223372036854775807"), ("7", "7"), ("a1b2-C_3", "a1b2-C_3"), ("x" * 64, "x" * 64)])
def test_a_boot_is_kept_as_text_a_counter_as_its_digits(boot: object, stored: str) -> None:
    fast = parse_telemetry(_j({**_TELEMETRY, "boot": boot}))  # the hot path
    slow = parse_telemetry(_j({**_TELEMETRY, "boot": boot, "events": [{"type": "replaced", "slot": "a"}]}))  # the checks in full
    assert fast.boot == slow.boot == stored
    assert parse_birth(_j({**_BIRTH, "boot": boot})).boot == stored


def test_a_message_without_a_boot_has_none() -> None:
    assert parse_telemetry(_j(_TELEMETRY)).boot is None
    assert parse_telemetry(_j({**_TELEMETRY, "events": []})).boot is None
    assert parse_birth(_j(_BIRTH)).boot is None


@pytest.mark.parametrize("boot", [-1, 2**63, 3.0, 1.5, True, None, "", "x" * 65, "a b", "7\n", "boot\u202e", "é", [1], {"n": 1}])
@pytest.mark.parametrize("kind", ["birth", "telemetry"])
def test_a_bad_boot_is_rejected_as_a_bad_field_that_says_what_a_boot_is(kind: str, boot: object) -> None:
    parse, doc = (parse_birth, _BIRTH) if kind == "birth" else (parse_telemetry, _TELEMETRY)
    with pytest.raises(InvalidMessage) as exc:
        parse(_j({**doc, "boot": boot}))
    assert exc.value.reason == "bad_field"
    assert str(exc.value).startswith("'boot' must be an integer from 0 to 2^63-1 or 1-64 characters of [A-Za-z0-9_-]")


def test_the_published_schemas_take_exactly_the_boots_the_parsers_take() -> None:
    from gateway.protocol import validator

    for kind, doc in (("birth", _BIRTH), ("telemetry", _TELEMETRY)):
        for boot in (0, 2**63 - 1, "a", "x" * 64):
            assert validator(kind).is_valid({**doc, "boot": boot})
        # 3.0 is an integer to JSON Schema, and "7\n" matches its `$`: the parsers refuse both (above).
        for boot in (-1, 2**63, 1.5, True, None, "", "x" * 65, "a b", [1]):
            assert not validator(kind).is_valid({**doc, "boot": boot}), (kind, boot)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


_BIRTH_BYTES = b'{"v": 1, "model": "m", "kind": "k", "firmware": "1", "slots": [{"slot": "a", "consumable": "c", "unit": "g", "capacity": 1}]'
_TELEMETRY_BYTES = b'{"v": 1, "seq": 1, "ts": "2026-01-01T00:00:00Z", "levels": {"a": 1}'


@pytest.mark.parametrize(
    ("parse", "payload", "reason", "detail"),
    [
        # Within orjson's limit (1,024 levels) and past Python's recursion limit (1,000): a RecursionError
        # raised while the rejection was worded (the value's repr), logged as a parser bug (parse_error).
        (parse_status, b'{"v": ' + _deep(1000) + b', "state": "online"}', "bad_version", "protocol version must be 1, got list"),
        (parse_status, b'{"v": 1, "state": ' + _deep(1000) + b"}", "schema", "message: nested deeper than 32 levels"),
        (parse_birth, _BIRTH_BYTES[:-1] + b", " + _deep(1020) + b"]}", "schema", "message: nested deeper than 32 levels"),
        (parse_birth, _BIRTH_BYTES + b', "x": ' + _deep(MAX_DEPTH) + b"}", "schema", "message: nested deeper than 32 levels"),
        (parse_telemetry, _TELEMETRY_BYTES[:-1] + b', "a": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"}}", "schema", "message: nested deeper than 32 levels"),
        (parse_telemetry, b'{"v": 1, "seq": ' + _deep(1020) + b', "ts": "2026-01-01T00:00:00Z", "levels": {"a": 1}}', "schema", "message: nested deeper than 32 levels"),
        (parse_telemetry, b'{"v": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"}", "bad_version", "protocol version must be 1, got dict"),
        (parse_telemetry, _TELEMETRY_BYTES + b', "boot": ' + _deep(1000) + b"}", "schema", "message: nested deeper than 32 levels"),  # before the boot's own check words it
        (parse_birth, _BIRTH_BYTES + b', "boot": ' + _deep(1000) + b"}", "schema", "message: nested deeper than 32 levels"),
        (parse_telemetry, b'{"v": "' + b"x" * 5000 + b'"}', "bad_version", "protocol version must be 1, got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ],
)
def test_a_deeply_nested_document_is_rejected_with_a_reason_not_a_recursion_error(parse: object, payload: bytes, reason: str, detail: str) -> None:
    with pytest.raises(InvalidMessage) as exc:
        parse(payload, "d")  # type: ignore[operator]
    assert (exc.value.reason, str(exc.value)) == (reason, detail)


def test_nesting_up_to_the_limit_is_the_schemas_to_judge() -> None:
    assert parse_birth(_BIRTH_BYTES + b', "x": ' + _deep(MAX_DEPTH - 1) + b"}").model == "m"  # an unknown field: allowed, however nested
    # The hot path's check vouches for a telemetry message with an unknown field: nothing recurses into it.
    assert parse_telemetry(_TELEMETRY_BYTES + b', "x": ' + _deep(1000) + b"}").levels == {"a": 1.0}
