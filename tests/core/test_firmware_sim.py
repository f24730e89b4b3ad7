"""The simulated devices: known answers of each seeded model, and schema-valid messages (the fleet on a broker: tests/service/test_fleet.py)."""

from __future__ import annotations

import json
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim import KINDS, Message, Quirks, make_device
from gateway.protocol import validator

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
YEAR = START + timedelta(days=365)
CALM = Quirks(p_unknown=0.0, p_offline=0.0, p_reboot=0.0, p_skew=0.0, drift_ppm=0.0, p_elsewhere=0.0)


def _numbers(msgs: list[Message], slot: str) -> list[float]:
    return [m.payload["levels"][slot] for m in msgs if m.suffix == "telemetry" and isinstance(m.payload["levels"][slot], int | float)]


def _population(kind: str, n: int, **quirks: float) -> list:  # type: ignore[type-arg]
    devs = [make_device(kind, f"pop-{i}", 11, START, interval=timedelta(days=1), quirks=Quirks(**quirks)) for i in range(n)]  # type: ignore[arg-type]
    for d in devs:
        d.advance(YEAR)
    return devs


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_message_of_a_messy_device_satisfies_the_published_schemas(kind: str) -> None:
    messy = Quirks(p_unknown=0.05, p_offline=0.3, p_reboot=0.2, p_skew=1.0, p_clock_reset=0.5, p_elsewhere=1.0)
    dev = make_device(kind, f"v-{kind.replace('.', '-')}", 3, START, quirks=messy)
    msgs = dev.advance(START + timedelta(days=90))
    name = dev.names[0]
    msgs += dev.on_orders({"v": 1, "ts": "x", "slots": {name: {"order_id": "o1", "status": "delivered", "expected_delivery": None}}}, START + timedelta(days=91))
    assert {m.suffix for m in msgs} == {"birth", "status", "telemetry"}
    for m in msgs:
        errors = [e.message for e in validator(m.suffix).iter_errors(m.payload)]
        assert not errors, (m, errors)
        assert m.payload["device"] == dev.device_id
    sentinels = {v for m in msgs if m.suffix == "telemetry" for v in m.payload["levels"].values() if not isinstance(v, int | float)}
    assert None in sentinels and "unknown" in sentinels
    assert any(e["type"] == "replaced" for m in msgs for e in m.payload.get("events", []))


def test_the_same_seed_gives_the_same_device_and_another_seed_another() -> None:
    def run(seed: int) -> list[tuple[str, str, float]]:
        return [(m.suffix, json.dumps(m.payload), m.at) for m in make_device("coffee", "c-1", seed, START).advance(START + timedelta(days=20))]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_mean_use_lies_within_the_cited_ranges_over_a_simulated_year() -> None:
    days = 365.0
    # §1b: the average home user prints 25-35 pages a month.
    pages = statistics.mean(d.truth().activity for d in _population("printer.inkjet", 300)) / days
    assert 25 / 30.4 <= pages <= 35 / 30.4, pages
    # §3: 0.13 (DE) - 0.22 (UK) L of milk a person a day (1.03 g/ml).
    milk = statistics.mean(d.truth().activity / d.household.persons for d in _population("fridge", 200)) / days
    assert 130 <= milk <= 0.22 * 1030, milk
    # §4: 2.7-3.1 cups per US coffee drinker a day, 81 % of them at home (DE).
    coffee = [d.truth().activity / days / max(1.0, d.household.persons * 0.66) for d in _population("coffee", 200)]
    assert 0.81 * 2.7 * 0.9 <= statistics.mean(coffee) <= 0.81 * 3.1, statistics.mean(coffee)  # 0.9: days away
    # §5: a 2-person home filters 3-4 L a day; Brita sizes for 1.9 L a person.
    water = statistics.mean(d.truth().activity / d.household.persons for d in _population("water_filter", 200)) / days
    assert 1.5 <= water <= 1.9, water
    # §6: RECS owners' mix averages ~150 cycles a year (less time away); the EU label assumes 280.
    cycles = statistics.mean(d.truth().activity for d in _population("dishwasher", 300))
    assert 125 <= cycles <= 280, cycles


def test_nothing_is_used_while_the_household_is_away() -> None:
    dev = make_device("fridge", "away-1", 2, START, quirks=Quirks(p_away=1.0, p_elsewhere=0.0), record=True)
    dev.advance(YEAR)
    truth = dev.truth()
    assert truth.away, "p_away=1 plans a main holiday every year (§9)"
    assert sum((e - s).days for s, e in truth.away) >= 7
    for s, e in truth.away:
        inside = [lv["milk"] for t, lv in truth.history if s < t < e]
        assert len(inside) > 24 and len(set(inside)) == 1, (s, e)
        assert not [r for r in truth.refills if s < r.at < e]


def test_levels_are_quantised_per_kind_and_exact_when_asked() -> None:
    end = START + timedelta(days=60)
    ink = _numbers(make_device("printer.inkjet", "q-ink", 1, START, quirks=CALM).advance(end), "black")
    assert ink and all(v % 10 == 0 for v in ink)
    milk = _numbers(make_device("fridge", "q-milk", 1, START, quirks=CALM).advance(end), "milk")
    assert milk and all(v % 5 == 0 for v in milk) and len({v % 10 for v in milk}) == 2  # 5 g steps, noisy
    water = _numbers(make_device("water_filter", "q-water", 1, START, quirks=CALM).advance(end), "cartridge")
    assert water and all(v % 100 == 0 for v in water)
    exact = Quirks.none()
    fine = _numbers(make_device("printer.inkjet", "q-ink", 1, START, quirks=exact, params={"sessions_per_day": 3.0}).advance(end), "black")
    assert any(v % 10 for v in fine)


def test_the_waste_toner_receptacle_fills_up_until_it_is_full() -> None:
    dev = make_device("printer.laser", "waste-1", 4, START, quirks=CALM, start_levels={"waste": 60.0}, params={"sessions_per_day": 30.0})
    assert dev.birth()["slots"][1] == {"slot": "waste", "consumable": "toner.waste", "unit": "percent", "capacity": 100, "fills_up": True}
    msgs = dev.advance(START + timedelta(days=60))
    waste = _numbers(msgs, "waste")
    first_full = waste.index(100)
    assert waste[0] == 60 and all(a <= b for a, b in zip(waste[:first_full], waste[1 : first_full + 1], strict=True))
    assert dev.truth().empty_at["waste"], "running full is recorded like running empty"


def test_a_reboot_resets_seq_to_zero_and_counts_the_boot() -> None:
    dev = make_device("dishwasher", "boot-1", 1, START, quirks=Quirks(p_reboot=0.5, p_offline=0.0, p_clock_reset=0.0))
    msgs = dev.advance(START + timedelta(days=30))
    assert len(dev.truth().reboots) >= 5
    seqs: list[list[int]] = [[]]
    births: list[int] = []
    boots: list[set[int]] = [set()]
    for m in msgs:
        if m.suffix == "birth":
            seqs.append([])
            boots.append(set())
            births.append(m.payload["boot"])
        elif m.suffix == "telemetry":
            seqs[-1].append(m.payload["seq"])
            boots[-1].add(m.payload["boot"])
    assert len(seqs) == len(dev.truth().reboots) + 2  # before the first birth, then one run per boot
    for run in seqs[1:]:
        assert run == list(range(len(run)))
    # The first birth is boot 0, and each reboot counts one more; every report carries its boot.
    assert births == list(range(len(dev.truth().reboots) + 1))
    assert boots[0] <= {0} and boots[1:] == [{b} for b in births]


def test_skewed_clocks_print_offset_timestamps_and_a_reset_clock_prints_1970() -> None:
    dev = make_device("coffee", "skew-1", 1, START, quirks=Quirks(p_skew=1.0, max_skew_h=3.0, drift_ppm=50.0, p_offline=0.0, p_reboot=0.0))
    msgs = [m for m in dev.advance(START + timedelta(days=10)) if m.suffix == "telemetry"]
    offsets = [datetime.fromisoformat(m.payload["ts"]).timestamp() - m.at for m in msgs]
    assert 1.0 <= abs(offsets[0]) <= 3 * 3600 + 1
    assert abs(offsets[-1] - dev.truth().clock_offset_s) < 1.5
    assert max(offsets) - min(offsets) < 3600 and max(offsets) != min(offsets)  # slow drift
    reset = make_device("coffee", "skew-2", 1, START, quirks=Quirks(p_reboot=2.0, p_clock_reset=1.0, p_offline=0.0))
    stamps = [m.payload["ts"] for m in reset.advance(START + timedelta(days=3)) if m.suffix == "telemetry"]
    assert any(s.startswith("1970-01-01") for s in stamps)


def test_an_offline_spell_buffers_telemetry_and_publishes_it_in_order_as_a_burst() -> None:
    dev = make_device("water_filter", "off-1", 1, START, quirks=Quirks(p_offline=1.0, offline_hours=(6.0, 0.3), p_reboot=0.0, p_skew=0.0, drift_ppm=0.0))
    msgs = dev.advance(START + timedelta(days=10))
    spell = dev.truth().offline[0]
    drop = next(i for i, m in enumerate(msgs) if m.will)
    assert msgs[drop].payload == {"v": 1, "device": "off-1", "state": "offline"} and msgs[drop].retain
    back = msgs[drop + 1]
    assert back.payload["state"] == "online" and back.when == spell[1]
    burst = []
    for m in msgs[drop + 2 :]:
        if m.suffix != "telemetry" or m.at != back.at:
            break
        burst.append(m)
    hours = (spell[1] - spell[0]).total_seconds() / 3600
    assert abs(len(burst) - hours) <= 1 and len(burst) >= 3
    stamps = [datetime.fromisoformat(m.payload["ts"]) for m in burst]
    assert stamps == sorted(stamps) and spell[0] <= stamps[0] and stamps[-1] <= spell[1]
    assert [m.payload["seq"] for m in burst] == list(range(burst[0].payload["seq"], burst[0].payload["seq"] + len(burst)))


def test_a_delivered_order_is_installed_once_and_reported_as_replaced() -> None:
    dev = make_device("printer.inkjet", "ord-1", 1, START, quirks=Quirks.none(), start_levels={"cyan": 12.0})
    t1, t2 = START + timedelta(days=1), START + timedelta(days=3)
    dev.on_orders(json.dumps({"v": 1, "ts": "x", "slots": {"cyan": {"order_id": "o-7", "status": "shipped", "expected_delivery": None}}}).encode(), t1)
    assert dev.in_flight == {1: "o-7"}
    delivered = json.dumps({"v": 1, "ts": "x", "slots": {"cyan": {"order_id": "o-7", "status": "delivered", "expected_delivery": None}}})
    out = dev.on_orders(delivered, t2)
    assert out[-1].suffix == "telemetry" and out[-1].payload["events"] == [{"type": "replaced", "slot": "cyan", "level": 100}]
    assert out[-1].payload["levels"]["cyan"] == 100 and dev.truth().refills[-1].source == "order"
    assert not [m for m in dev.on_orders(delivered, t2 + timedelta(hours=1)) if m.payload.get("events")]  # retained again: no second unit


def test_units_bought_elsewhere_show_as_level_jumps_with_or_without_a_replaced_event() -> None:
    fridge = make_device("fridge", "else-1", 1, START, quirks=CALM, record=True)
    msgs = fridge.advance(START + timedelta(days=60))
    refills = fridge.truth().refills
    assert len(refills) >= 5 and {r.source for r in refills} == {"elsewhere"} and not any(r.reported for r in refills)
    assert not any(m.payload.get("events") for m in msgs if m.suffix == "telemetry")
    milk = _numbers(msgs, "milk")
    assert sum(1 for a, b in zip(milk, milk[1:], strict=False) if b - a > 0.3 * fridge.cap[0]) >= 5
    jug = make_device("water_filter", "else-2", 1, START, quirks=CALM, start_levels={"cartridge": 2000.0}, params={"sessions_per_day": 60.0})
    msgs = jug.advance(START + timedelta(days=120))
    reported = [r.reported for r in jug.truth().refills]
    assert True in reported and False in reported
    assert sum(len(m.payload.get("events", [])) for m in msgs if m.suffix == "telemetry") == reported.count(True)


def test_pure_models_are_fast_enough_for_the_fleet_year_benchmark() -> None:
    kinds = sorted(KINDS)
    devs = [make_device(kinds[i % len(kinds)], f"speed-{i}", 1, START) for i in range(120)]
    t0 = time.perf_counter()
    count = sum(len(d.advance(START + timedelta(days=30))) for d in devs)
    rate = 120 / (time.perf_counter() - t0)
    assert count > 120 * 700 and rate > 50, f"{rate:.0f} device-months a second (hourly reports)"


def test_firmware_sim_imports_nothing_of_the_product() -> None:
    for path in Path(__file__).parents[2].joinpath("firmware_sim").glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+(gateway|replenish)\b", path.read_text(), re.M), path
