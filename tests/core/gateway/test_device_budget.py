"""Fairness under floods (issue 10): a device's message budget, superseded writes coalesced, statuses not barriers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.mqtt import Delivery
from gateway.protocol import Birth, DeviceBudget, SlotSpec, Telemetry, TelemetryIn, Topics
from gateway.services.pipeline import BirthOp, Parsed, Parser, StatusOp, TelemetryRun, coalesced, ordered
from gateway.storage import PreparedTelemetry

NOW = datetime(2026, 11, 1, tzinfo=UTC)
BIRTH = Birth("m", "printer.inkjet", "1", (SlotSpec("black", "ink.black", "percent", 100.0),))


def _d(topic: str = "t", payload: bytes = b"", arrived: float = 0.0) -> Delivery:
    return Delivery(topic, payload, 0, NOW, 1, arrived)


def _run(*devices: str) -> TelemetryRun:
    msgs = [TelemetryIn(d, Telemetry(1, NOW, {"black": 1.0}), NOW) for d in devices]
    return TelemetryRun([_d() for _ in msgs], msgs, PreparedTelemetry(None, len(msgs), []))


def test_a_device_may_send_its_burst_at_once_then_its_rate() -> None:
    budget = DeviceBudget(burst=3, per_minute=60)
    assert [budget.allow("a", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert budget.allow("b", 0.0), "every device has a budget of its own"
    assert not budget.allow("a", 0.5) and budget.allow("a", 1.0), "one token a second at 60 a minute"
    assert [budget.allow("a", 100.0) for _ in range(4)] == [True, True, True, False], "refills up to the burst, no more"


@pytest.mark.parametrize(("burst", "per_minute"), [(0, 60), (5, 0), (5, -1)])
def test_a_budget_refuses_values_that_mean_nothing(burst: int, per_minute: float) -> None:
    with pytest.raises(ValueError, match="budget"):
        DeviceBudget(burst, per_minute)


def test_statuses_collapse_to_each_devices_last_and_births_only_without_its_telemetry_between() -> None:
    ops = [
        StatusOp(_d(), "a", True), StatusOp(_d(), "b", True), StatusOp(_d(), "a", False),
        BirthOp(_d(), "c", BIRTH), _run("x"), BirthOp(_d(), "c", BIRTH),  # another device's telemetry between: one birth is enough
        BirthOp(_d(), "d", BIRTH), _run("d"), BirthOp(_d(), "d", BIRTH),  # d's telemetry between: both births stay
    ]  # fmt: skip
    kept = coalesced(ops)
    assert [(type(op).__name__, getattr(op, "device_id", None)) for op in kept] == [
        ("StatusOp", "b"), ("StatusOp", "a"), ("TelemetryRun", None), ("BirthOp", "c"),
        ("BirthOp", "d"), ("TelemetryRun", None), ("BirthOp", "d"),
    ]  # fmt: skip
    assert kept[1].online is False, "the later status wins"  # type: ignore[union-attr]


def test_a_status_is_no_barrier_and_merges_with_telemetry() -> None:
    assert not ordered([StatusOp(_d(), "a", True), _run("b")]) and ordered([BirthOp(_d(), "a", BIRTH)])
    parsed = Parsed(limit=100)
    parsed.put([_d("1")], [_run("a")])
    parsed.put([_d("2")], [StatusOp(_d("2"), "a", True)])
    parsed.put([_d("3")], [_run("b")])
    batch = parsed.take(10)
    assert batch is not None and [d.topic for d in batch[0]] == ["1", "2", "3"] and not batch[2]


def test_messages_over_a_devices_budget_are_dropped_and_the_others_parsed() -> None:
    topics = Topics()
    parser = Parser(topics, lambda msgs: PreparedTelemetry(None, len(msgs), []), DeviceBudget(burst=3, per_minute=1))
    tel = b'{"v": 1, "seq": 1, "ts": "2026-11-01T00:00:00Z", "levels": {"black": 40}}'
    flood = [_d(topics.topic("loud", "telemetry"), tel) for _ in range(10)]
    quiet = [_d(topics.topic("quiet", "telemetry"), tel) for _ in range(2)]
    (run,) = parser.parse(flood + quiet)
    assert type(run) is TelemetryRun
    assert [m.device_id for m in run.messages] == ["loud"] * 3 + ["quiet"] * 2
