"""The ingest pipeline's stages without a broker or a database: parsing into tagged ops, and the order writers keep."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from gateway.mqtt import Delivery
from gateway.protocol import Birth, SlotSpec, Topics
from gateway.services.pipeline import BirthOp, Parsed, Parser, RejectOp, StatusOp, TelemetryRun
from gateway.storage import PreparedTelemetry

NOW = datetime(2026, 11, 1, tzinfo=UTC)
BIRTH = Birth("m", "printer.inkjet", "1", (SlotSpec("black", "ink.black", "percent", 100.0),))


def _delivery(topic: str, payload: bytes = b"") -> Delivery:
    return Delivery(topic, payload, 0, NOW, 1, 0.0)


def _run(topic: str) -> TelemetryRun:
    return TelemetryRun([_delivery(topic)], [], PreparedTelemetry(None, 0, []))


def test_deliveries_become_tagged_ops_and_telemetry_runs_are_prepared_together() -> None:
    topics = Topics("site-7")
    prepared: list[int] = []
    parser = Parser(topics, lambda msgs: prepared.append(len(msgs)) or PreparedTelemetry(None, len(msgs), []))  # type: ignore[func-returns-value]
    tel = b'{"v": 1, "seq": 1, "ts": "2026-11-01T00:00:00Z", "levels": {"black": 40}}'
    ops = parser.parse(
        [
            _delivery(topics.topic("d1", "telemetry"), tel),
            _delivery(topics.topic("d2", "telemetry"), tel),
            _delivery(topics.topic("d1", "status"), b'{"v": 1, "state": "offline"}'),
            _delivery("replenish/v1/devices/d1/telemetry", tel),  # not under the namespace
            _delivery(topics.topic("d1", "telemetry"), b"{nope"),
        ]
    )
    assert [type(op) for op in ops] == [TelemetryRun, StatusOp, RejectOp, RejectOp]
    assert prepared == [2], "consecutive telemetry is prepared as one run"
    assert (ops[1].device_id, ops[1].online) == ("d1", False)  # type: ignore[union-attr]
    assert [op.reason for op in ops[2:]] == ["bad_topic", "not_json"]  # type: ignore[union-attr]


def _blocked_take(parsed, release):  # type: ignore[no-untyped-def]
    """What a writer's `take` returns once `release` has run; asserts it was blocked until then."""
    got: list[object] = []
    writer = threading.Thread(target=lambda: got.append(parsed.take(10)))
    writer.start()
    time.sleep(0.2)
    assert not got, "the writer should still be waiting"
    release()
    writer.join(5)
    assert got
    return got[0]


def test_writers_never_overtake_a_birth() -> None:
    """Batches commit side by side, except around a birth or status: those keep their place."""
    parsed = Parsed(limit=100)
    parsed.put([_delivery("a")], [_run("a")])
    parsed.put([_delivery("b")], [BirthOp(_delivery("b"), "b", BIRTH)])
    parsed.put([_delivery("c")], [_run("c")])
    first = parsed.take(10)
    assert first is not None and [d.topic for d in first[0]] == ["a"] and not first[2], "telemetry never merges into a birth's batch"
    second = _blocked_take(parsed, lambda: parsed.done(False))  # the birth waits for the batch before it
    assert [d.topic for d in second[0]] == ["b"] and second[2]
    third = _blocked_take(parsed, lambda: parsed.done(True))  # nothing starts while the birth is being stored
    assert [d.topic for d in third[0]] == ["c"]
    parsed.done(False)
    parsed.close()
    assert parsed.take(10) is None
