"""Fairness under floods (issue 10): a device's message budget, superseded writes coalesced, statuses not barriers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.mqtt import Delivery
from gateway.protocol import Birth, DeviceBudget, device_class, OverBudget, OverBudgetNote, SlotSpec, Telemetry, TelemetryIn, Topics, note_detail, persistently_over_budget, read_note
from gateway.services.pipeline import BirthOp, OverBudgetOp, Parsed, Parser, StatusOp, TelemetryRun, coalesced, ordered
from gateway.storage import PreparedTelemetry

NOW = datetime(2026, 11, 1, tzinfo=UTC)
BIRTH = Birth("m", "printer.inkjet", "1", (SlotSpec("black", "ink.black", "percent", 100.0),))


def _d(topic: str = "t", payload: bytes = b"", arrived: float = 0.0, received_at: datetime = NOW) -> Delivery:
    return Delivery(topic, payload, 0, received_at, 1, arrived)


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
    loud, note, calm = parser.parse(flood + quiet)
    assert type(loud) is TelemetryRun and type(note) is OverBudgetOp and type(calm) is TelemetryRun
    assert [m.device_id for m in loud.messages + calm.messages] == ["loud"] * 3 + ["quiet"] * 2


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("printer.laser", "printer"), ("printer", "printer"), ("Fridge", "fridge"), ("water_filter.jug", "water_filter"), ("toaster", "other"), ("printer\u202e", "other"), ("", "other"), (None, "unknown")],
)
def test_a_devices_class_is_the_first_part_of_its_kind_among_a_bounded_few(kind: str | None, cls: str) -> None:
    assert device_class(kind) == cls


def test_a_flood_is_counted_by_message_kind_and_the_class_of_its_device() -> None:
    from prometheus_client import REGISTRY

    def dropped(kind: str, cls: str) -> float:
        return REGISTRY.get_sample_value("replenish_gateway_over_budget_total", {"kind": kind, "device_class": cls}) or 0.0

    topics = Topics("class-" + str(id(object())))
    parser = Parser(topics, lambda msgs: PreparedTelemetry(None, len(msgs), []), DeviceBudget(burst=2, per_minute=1))
    parser.learn_kinds({"known-fridge": "fridge.combi"})
    birth = b'{"v": 1, "model": "m", "kind": "printer.laser", "firmware": "1", "slots": [{"slot": "black", "consumable": "toner.black", "unit": "percent", "capacity": 100}]}'
    status = b'{"v": 1, "state": "online"}'
    before = {(k, c): dropped(k, c) for k in ("status", "birth") for c in ("printer", "fridge", "unknown")}
    # "born" announces itself; "known-fridge" is in the registry; "stranger" has no birth anywhere.
    parser.parse([_d(topics.topic("born", "birth"), birth)] + [_d(topics.topic("born", "status"), status) for _ in range(5)])
    parser.parse([_d(topics.topic("known-fridge", "status"), status) for _ in range(4)] + [_d(topics.topic("stranger", "status"), status) for _ in range(3)])
    assert dropped("status", "printer") - before["status", "printer"] == 4  # its birth spent one of two tokens
    assert dropped("status", "fridge") - before["status", "fridge"] == 2
    assert dropped("status", "unknown") - before["status", "unknown"] == 1


M = timedelta(minutes=1)


def _note(minute: float, dropped: int = 100, since: float | None = None) -> OverBudgetNote:
    return OverBudgetNote(NOW + minute * M, dropped, NOW + (minute if since is None else since) * M)


@pytest.mark.parametrize(
    ("minutes", "now", "expected"),
    [
        ([], 0, None),
        ([0], 0, None),  # one note: a burst
        ([0, 9], 9, None),  # nine minutes
        ([0, 10], 10, (200, 0, 10)),  # ten minutes: persistent
        ([0, 10], 59, (200, 0, 10)),
        ([0, 10], 60, (200, 0, 10)),  # the window's edge belongs to it
        ([0, 10], 61, None),  # the first note is older than the hour: what remains spans nothing
        ([0, 5, 10, 30, 61], 62, (400, 5, 61)),  # an hour back from minute 62: 5, 10, 30, 61
        ([20, 0, 10], 20, (300, 0, 20)),  # in any order (several workers)
        ([0, 10, 30], 20, (200, 0, 10)),  # a note after `now` is not yet
    ],
)
def test_a_device_is_over_budget_persistently_when_its_notes_of_the_last_hour_span_ten_minutes(
    minutes: list[float], now: float, expected: tuple[int, float, float] | None
) -> None:
    found = persistently_over_budget("loud", [_note(m) for m in minutes], NOW + now * M)
    assert found == (None if expected is None else OverBudget("loud", expected[0], NOW + expected[1] * M, NOW + expected[2] * M))


def test_what_is_reported_counts_the_notes_and_starts_at_the_first_drop_they_count() -> None:
    notes = [_note(0, 1), _note(1, 59, since=0.02), _note(12, 600, since=1.5), _note(12.5, 30, since=12.1)]  # two workers' notes
    assert persistently_over_budget("loud", notes, NOW + 13 * M) == OverBudget("loud", 690, NOW, NOW + 12.5 * M)


def test_a_notes_detail_reads_back_and_other_details_are_not_notes() -> None:
    since = NOW - timedelta(seconds=61.5)
    detail = note_detail(1234, since, 2500.0, 60.0)
    assert detail == f"1234 messages dropped since {since.isoformat()}: the device sends more than its budget (2500 at once, then 60 a minute)"
    assert read_note(NOW, detail) == OverBudgetNote(NOW, 1234, since)
    assert read_note(NOW, note_detail(1, NOW, 3.0, 0.5)) == OverBudgetNote(NOW, 1, NOW)
    for other in ("", "payload is not JSON", "12 messages dropped since yesterday: x", "messages dropped since 2026-11-01T00:00:00+00:00: x"):
        assert read_note(NOW, other) is None, other


def test_a_device_over_budget_is_noted_once_a_minute_with_how_many_were_dropped_since_when() -> None:
    topics = Topics()
    parser = Parser(topics, lambda msgs: PreparedTelemetry(None, len(msgs), []), DeviceBudget(burst=2, per_minute=1e-6))
    tel = b'{"v": 1, "seq": 1, "ts": "2026-11-01T00:00:00Z", "levels": {"black": 40}}'

    def loud(seconds: float, n: int = 1) -> list[Delivery]:
        return [_d(topics.topic("loud", "telemetry"), tel, received_at=NOW + timedelta(seconds=seconds)) for _ in range(n)]

    def notes(ops: list[object]) -> list[str]:
        return [op.detail for op in ops if type(op) is OverBudgetOp]  # type: ignore[attr-defined]

    first = parser.parse(loud(0, 5))  # two pass, three dropped: the first drop is noted at once
    assert notes(first) == [note_detail(1, NOW, 2, 1e-6)]
    assert type(first[0]) is TelemetryRun and type(first[1]) is OverBudgetOp and first[1].delivery.topic == topics.topic("loud", "telemetry")
    assert notes(parser.parse(loud(30, 10) + loud(59.9))) == [], "not again within the minute"
    assert notes(parser.parse(loud(60))) == [note_detail(2 + 10 + 1 + 1, NOW, 2, 1e-6)], "the drops since the last note, the first of them at 0 s"
    assert notes(parser.parse(loud(200))) == [note_detail(1, NOW + timedelta(seconds=200), 2, 1e-6)]
    assert notes(parser.parse([_d(topics.topic("calm", "telemetry"), tel, received_at=NOW + timedelta(seconds=201))])) == [], "another device has its own budget"
