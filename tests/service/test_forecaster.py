"""The gateway's forecasting adapter: fleet priors per model and slot, away periods, stored forecasts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gateway import AwayProvider, Birth, Forecaster, GatewayStorage, SlotSpec, TelemetryIn, away_from
from gateway.protocol import Telemetry
from gateway.forecasting import Prior

START = datetime(2026, 3, 2, tzinfo=UTC)
DAY = timedelta(days=1)


def _forecaster(store: GatewayStorage) -> Forecaster:
    return Forecaster(store.registry, store.forecasts)


def _refresh(store: GatewayStorage, fc: Forecaster, now: datetime, away: AwayProvider | None = None) -> int:
    """What the service's tick does: settle the appended readings into slot state, then forecast."""
    store.settler.settle()
    return fc.refresh(now, away=away)


def _device(store: GatewayStorage, device_id: str, model: str, levels: Sequence[float], slot: str = "ink") -> datetime:
    """A consenting device of `model` that reported `levels` (percent) once a day from START; returns the last time."""
    store.registry.record_birth(device_id, Birth(model, "printer.inkjet", "1.0", (SlotSpec(slot, "ink.black", "percent", 100),)), START)
    store.registry.set_store_readings(device_id, True)
    batch = [TelemetryIn(device_id, Telemetry(i, START + i * DAY, {slot: round(v, 6)}), START + i * DAY) for i, v in enumerate(levels)]
    store.telemetry.store(batch)
    return START + (len(levels) - 1) * DAY


def test_priors_are_learnt_per_model_and_slot_and_carry_a_cold_start_slot(storage: GatewayStorage) -> None:
    store = storage
    rates = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]  # percent a day: six households with enough data
    for i, r in enumerate(rates):
        now = _device(store, f"teach-{i}", "hp-67", [90 - r * d for d in range(30)])
    for i in range(4):  # too few of another model to say anything about it
        _device(store, f"other-{i}", "hp-302", [90 - 5.0 * d for d in range(30)])
    fc = _forecaster(store)
    assert _refresh(store, fc, now) == 10
    # Log-rates: median of log 1.2 % and log 1.3 %; their spread (1.4826 x MAD = 0.18) is floored
    # at 0.5, handed to the core as the sd of a log-normal with that median.
    median = math.sqrt(0.012 * 0.013)
    (learnt,) = fc.learn_priors(now).items()
    assert learnt[0] == ("hp-67", "ink") and learnt[1].capacity is None
    assert (learnt[1].rate, learnt[1].sd) == pytest.approx((median, median * math.sqrt(math.expm1(0.25))))

    new = _device(store, "newcomer", "hp-67", [80.0])  # one reading: no line of its own yet
    stranger = _device(store, "stranger", "hp-302", [80.0])
    assert _refresh(store, fc, max(now, new, stranger)) == 2
    got = store.forecasts.rows(["newcomer", "stranger"])
    e = got[("newcomer", "ink")].explanation
    assert e["method"] == "prior only" and e["rate_per_day"] == pytest.approx(median)
    assert e["tte_days"]["p50"] == pytest.approx(0.8 / median - (now - new).days)
    assert e["confidence"] == 0.0  # all of it is the fleet's, none the slot's own
    assert got[("stranger", "ink")].explanation["method"] == "none"
    assert got[("stranger", "ink")].empty_p10 is None


def _scale(store: GatewayStorage, device_id: str, capacity: float, grams: Sequence[float]) -> datetime:
    """A consenting coffee machine with a bag of `capacity` grams that reported `grams` once a day from START."""
    store.registry.record_birth(device_id, Birth("bean2cup", "coffee", "1.0", (SlotSpec("beans", "coffee.beans", "g", capacity),)), START)
    store.registry.set_store_readings(device_id, True)
    batch = [TelemetryIn(device_id, Telemetry(i, START + i * DAY, {"beans": round(v, 3)}), START + i * DAY) for i, v in enumerate(grams)]
    store.telemetry.store(batch)
    return START + (len(grams) - 1) * DAY


def test_a_prior_is_learnt_in_grams_when_households_buy_different_bags(storage: GatewayStorage) -> None:
    store = storage
    # Six households drink about 30 g a day, from 250 g or 1 kg bags: 3 % or 12 % of a bag a day.
    for i, (bag, g) in enumerate([(250, 28.1), (1000, 29.3), (250, 30.2), (1000, 30.9), (250, 31.7), (1000, 32.3)]):
        now = _scale(store, f"teach-{i}", bag, [bag - g * d for d in range(7)])
    fc = _forecaster(store)
    _refresh(store, fc, now)
    prior = fc.learn_priors(now)[("bean2cup", "beans")]
    grams = math.sqrt(30.2 * 30.9)  # the median of the grams a day (the spread is floored)
    assert prior.capacity == 625.0  # median bag; a slot's prior is rescaled to its own
    assert prior.rate == pytest.approx(grams / 625, rel=1e-3)
    new = _scale(store, "newcomer", 500, [500.0])
    _refresh(store, fc, max(now, new))
    e = store.forecasts.rows(["newcomer"])[("newcomer", "beans")].explanation
    assert e["method"] == "prior only" and e["rate_per_day"] == pytest.approx(grams / 500, rel=1e-3)


def test_the_prior_fades_as_the_slot_brings_its_own_readings(storage: GatewayStorage) -> None:
    store = storage
    fc = _forecaster(store)
    fc.priors, fc.priors_at = {("hp-67", "ink"): Prior(0.03, 0.015)}, START + 100 * DAY  # a fleet that uses 3 %/day
    weights, rates = [], []
    # (The burst prior is the fleet's median household's until the slot's own increments outweigh
    # it, so a light user takes about three weeks of daily readings to shed most of the prior.)
    for n in (3, 6, 12, 24):
        now = _device(store, f"dev-{n}", "hp-67", [90 - 1.0 * d for d in range(n)])
        _refresh(store, fc, now)
        e = store.forecasts.rows([f"dev-{n}"])[(f"dev-{n}", "ink")].explanation
        weights.append(e["prior_weight"])
        rates.append(e["rate_per_day"])
    assert weights == sorted(weights, reverse=True) and weights[-1] < 0.25
    assert 0.01 <= rates[-1] < rates[0] <= 0.03  # pulled towards the fleet at first, then its own 1 %/day


def test_away_periods_stretch_time_to_empty_by_the_time_away(storage: GatewayStorage) -> None:
    store = storage
    for device_id in ("home", "trip"):  # two households with the same readings: 71 % left at 1 %/day
        now = _device(store, device_id, "hp-67", [90 - 1.0 * d for d in range(20)])
    asked: list[list[str]] = []
    calendar = away_from({"trip": [(now + 5 * DAY, now + 15 * DAY)]})

    def provider(device_ids: Sequence[str]) -> dict[str, list[tuple[datetime, datetime]]]:
        asked.append(list(device_ids))
        return calendar(device_ids)

    _refresh(store, _forecaster(store), now, away=provider)
    got = store.forecasts.rows(["home", "trip"])
    home, trip = got[("home", "ink")], got[("trip", "ink")]
    assert asked == [["home", "trip"]]
    assert home.empty_p50 == pytest.approx(now + 71 * DAY, abs=timedelta(minutes=1))
    for a, b in ((trip.empty_p10, home.empty_p10), (trip.empty_p50, home.empty_p50), (trip.empty_p90, home.empty_p90)):
        assert a - b == pytest.approx(10 * DAY, abs=timedelta(seconds=1))


def test_time_away_in_the_past_is_not_read_as_slow_use(storage: GatewayStorage) -> None:
    store = storage
    # 1 %/day at home; days 10-19 away: flat. Without the calendar the line says about 0.7 %/day.
    levels = [90 - 1.0 * min(d, 10) - 1.0 * max(d - 20, 0) for d in range(31)]
    now = _device(store, "holiday", "hp-67", levels)
    fc = _forecaster(store)
    _refresh(store, fc, now, away=away_from({"holiday": [(START + 10 * DAY, START + 20 * DAY)]}))
    f = store.forecasts.rows(["holiday"])[("holiday", "ink")]
    assert f.rate_per_day == pytest.approx(0.01, rel=1e-4)
    assert f.level_now == pytest.approx(0.70, abs=1e-4)


def test_forecasts_are_stored_readable_and_clear_the_dirty_flag(storage: GatewayStorage) -> None:
    store = storage
    now = _device(store, "plain", "hp-67", [90 - 2.0 * d for d in range(10)])
    fc = _forecaster(store)
    assert _refresh(store, fc, now) == 1 and _refresh(store, fc, now) == 0
    f = store.forecasts.rows(["plain"])[("plain", "ink")]
    assert f.computed_at == now and f.n_used == 10
    assert f.rate_per_day == pytest.approx(0.02, rel=1e-4)
    assert f.empty_p50 == pytest.approx(now + 36 * DAY, abs=timedelta(minutes=1))  # float32 core
    assert f.empty_p10 < f.empty_p50 < f.empty_p90
    assert f.explanation["method"] == "level regression" and f.explanation["readings_used"] == 10
