"""The gateway's forecasting adapter: fleet priors per model and slot, away periods, stored forecasts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from gateway import Birth, Forecaster, GatewayStore, SlotSpec, Telemetry, TelemetryIn
from gateway._forecast import forecast_batch
from gateway._forecaster import away_from, thin_readings

START = datetime(2026, 3, 2, tzinfo=UTC)
DAY = timedelta(days=1)


def _device(store: GatewayStore, device_id: str, model: str, levels: Sequence[float], slot: str = "ink") -> datetime:
    """A consenting device of `model` that reported `levels` (percent) once a day from START; returns the last time."""
    store.record_birth(device_id, Birth(model, "printer.inkjet", "1.0", (SlotSpec(slot, "ink.black", "percent", 100),)), START)
    store.set_store_readings(device_id, True)
    batch = [TelemetryIn(device_id, Telemetry(i, START + i * DAY, {slot: round(v, 6)}), START + i * DAY) for i, v in enumerate(levels)]
    store.store_telemetry(batch)
    return START + (len(levels) - 1) * DAY


def test_priors_are_learnt_per_model_and_slot_and_carry_a_cold_start_slot(engine: Engine) -> None:
    store = GatewayStore(engine)
    rates = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]  # percent a day: six households with enough data
    for i, r in enumerate(rates):
        now = _device(store, f"teach-{i}", "hp-67", [90 - r * d for d in range(30)])
    for i in range(4):  # too few of another model to say anything about it
        _device(store, f"other-{i}", "hp-302", [90 - 5.0 * d for d in range(30)])
    fc = Forecaster(store)
    assert fc.refresh(now) == 10
    # Log-rates: median of log 1.2 % and log 1.3 %; their spread (1.4826 x MAD = 0.18) is floored
    # at 0.5, handed to the core as the sd of a log-normal with that median.
    median = math.sqrt(0.012 * 0.013)
    assert fc.learn_priors(now) == {("hp-67", "ink"): pytest.approx((median, median * math.sqrt(math.expm1(0.25))))}

    new = _device(store, "newcomer", "hp-67", [80.0])  # one reading: no line of its own yet
    stranger = _device(store, "stranger", "hp-302", [80.0])
    assert fc.refresh(max(now, new, stranger)) == 2
    got = store.forecasts(["newcomer", "stranger"])
    e = got[("newcomer", "ink")].explanation
    assert e["method"] == "prior only" and e["rate_per_day"] == pytest.approx(median)
    assert e["tte_days"]["p50"] == pytest.approx(0.8 / median - (now - new).days)
    assert e["confidence"] == 0.0  # all of it is the fleet's, none the slot's own
    assert got[("stranger", "ink")].explanation["method"] == "none"
    assert got[("stranger", "ink")].empty_p10 is None


def _scale(store: GatewayStore, device_id: str, capacity: float, grams: Sequence[float]) -> datetime:
    """A consenting coffee machine with a bag of `capacity` grams that reported `grams` once a day from START."""
    store.record_birth(device_id, Birth("bean2cup", "coffee", "1.0", (SlotSpec("beans", "coffee.beans", "g", capacity),)), START)
    store.set_store_readings(device_id, True)
    batch = [TelemetryIn(device_id, Telemetry(i, START + i * DAY, {"beans": round(v, 3)}), START + i * DAY) for i, v in enumerate(grams)]
    store.store_telemetry(batch)
    return START + (len(grams) - 1) * DAY


def test_a_prior_is_learnt_in_grams_when_households_buy_different_bags(engine: Engine) -> None:
    store = GatewayStore(engine)
    # Six households drink about 30 g a day, from 250 g or 1 kg bags: 3 % or 12 % of a bag a day.
    for i, (bag, g) in enumerate([(250, 28.1), (1000, 29.3), (250, 30.2), (1000, 30.9), (250, 31.7), (1000, 32.3)]):
        now = _scale(store, f"teach-{i}", bag, [bag - g * d for d in range(7)])
    fc = Forecaster(store)
    fc.refresh(now)
    prior = fc.learn_priors(now)[("bean2cup", "beans")]
    grams = math.sqrt(30.2 * 30.9)  # the median of the grams a day (the spread is floored)
    assert fc.prior_capacity[("bean2cup", "beans")] == 625.0  # median bag; a slot's prior is rescaled to its own
    assert prior[0] == pytest.approx(grams / 625, rel=1e-3)
    new = _scale(store, "newcomer", 500, [500.0])
    fc.refresh(max(now, new))
    e = store.forecasts(["newcomer"])[("newcomer", "beans")].explanation
    assert e["method"] == "prior only" and e["rate_per_day"] == pytest.approx(grams / 500, rel=1e-3)


def test_the_prior_fades_as_the_slot_brings_its_own_readings(engine: Engine) -> None:
    store = GatewayStore(engine)
    fc = Forecaster(store)
    fc.priors, fc.priors_at = {("hp-67", "ink"): (0.03, 0.015)}, START + 100 * DAY  # a fleet that uses 3 %/day
    weights, rates = [], []
    # (The burst prior is the fleet's median household's until the slot's own increments outweigh
    # it, so a light user takes about three weeks of daily readings to shed most of the prior.)
    for n in (3, 6, 12, 24):
        now = _device(store, f"dev-{n}", "hp-67", [90 - 1.0 * d for d in range(n)])
        fc.refresh(now)
        e = store.forecasts([f"dev-{n}"])[(f"dev-{n}", "ink")].explanation
        weights.append(e["prior_weight"])
        rates.append(e["rate_per_day"])
    assert weights == sorted(weights, reverse=True) and weights[-1] < 0.25
    assert 0.01 <= rates[-1] < rates[0] <= 0.03  # pulled towards the fleet at first, then its own 1 %/day


def test_away_periods_stretch_time_to_empty_by_the_time_away(engine: Engine) -> None:
    store = GatewayStore(engine)
    for device_id in ("home", "trip"):  # two households with the same readings: 71 % left at 1 %/day
        now = _device(store, device_id, "hp-67", [90 - 1.0 * d for d in range(20)])
    asked: list[list[str]] = []
    calendar = away_from({"trip": [(now + 5 * DAY, now + 15 * DAY)]})

    def provider(device_ids: Sequence[str]) -> dict[str, list[tuple[datetime, datetime]]]:
        asked.append(list(device_ids))
        return calendar(device_ids)

    Forecaster(store).refresh(now, away=provider)
    got = store.forecasts(["home", "trip"])
    home, trip = got[("home", "ink")], got[("trip", "ink")]
    assert asked == [["home", "trip"]]
    assert home.empty_p50 == pytest.approx(now + 71 * DAY, abs=timedelta(minutes=1))
    for a, b in ((trip.empty_p10, home.empty_p10), (trip.empty_p50, home.empty_p50), (trip.empty_p90, home.empty_p90)):
        assert a - b == pytest.approx(10 * DAY, abs=timedelta(seconds=1))


def test_time_away_in_the_past_is_not_read_as_slow_use(engine: Engine) -> None:
    store = GatewayStore(engine)
    # 1 %/day at home; days 10-19 away: flat. Without the calendar the line says about 0.7 %/day.
    levels = [90 - 1.0 * min(d, 10) - 1.0 * max(d - 20, 0) for d in range(31)]
    now = _device(store, "holiday", "hp-67", levels)
    fc = Forecaster(store)
    fc.refresh(now, away=away_from({"holiday": [(START + 10 * DAY, START + 20 * DAY)]}))
    f = store.forecasts(["holiday"])[("holiday", "ink")]
    assert f.rate_per_day == pytest.approx(0.01, rel=1e-4)
    assert f.level_now == pytest.approx(0.70, abs=1e-4)


def test_forecasts_are_stored_readable_and_clear_the_dirty_flag(engine: Engine) -> None:
    store = GatewayStore(engine)
    now = _device(store, "plain", "hp-67", [90 - 2.0 * d for d in range(10)])
    fc = Forecaster(store)
    assert fc.refresh(now) == 1 and fc.refresh(now) == 0
    f = store.forecasts(["plain"])[("plain", "ink")]
    assert f.computed_at == now and f.n_used == 10
    assert f.rate_per_day == pytest.approx(0.02, rel=1e-4)
    assert f.empty_p50 == pytest.approx(now + 36 * DAY, abs=timedelta(minutes=1))  # float32 core
    assert f.empty_p10 < f.empty_p50 < f.empty_p90
    assert f.explanation["method"] == "level regression" and f.explanation["readings_used"] == 10


def test_thinning_keeps_what_the_core_uses_so_the_forecast_is_unchanged() -> None:
    hours = np.arange(2000.0)  # hourly readings of a quantised slot: long plateaus, a few step-downs
    true = 0.95 - 0.004 * hours / 24
    y = np.round(true * 10) / 10
    t = 1.7e9 + hours * 3600
    idx = thin_readings(t, y, 240)
    assert len(idx) == 240 and idx[0] == 0 and idx[-1] == len(y) - 1
    full = forecast_batch(t[None, :], y[None, :], t[-1])
    thin = forecast_batch(t[None, idx], y[None, idx], t[-1])
    for a, b in ((full.rate_per_day, thin.rate_per_day), (full.tte_p10_days, thin.tte_p10_days), (full.tte_p50_days, thin.tte_p50_days)):
        assert a[0] == pytest.approx(b[0], rel=1e-5)
    noisy = 0.9 - 0.01 * hours / 24 + np.random.default_rng(1).normal(0, 0.01, hours.size)  # changes at every reading
    idx = thin_readings(t, noisy, 240)
    assert len(idx) == 240 and idx[0] == 0 and idx[-1] == len(y) - 1  # evenly over the whole span


def test_round_units_of_scales_and_meters_become_the_step() -> None:
    from gateway._forecaster import unit_step

    levels = np.array(
        [
            [400 / 500, 390 / 500, 380 / 500, np.nan],  # beans in 10 g of a 500 g bag
            [0.5, 0.49, 0.47, 0.45],  # 1 g of 100 g: finer than half a percent would be noise
            [1.0, 1.0, np.nan, np.nan],  # too few distinct amounts to believe a grid
            [150 / 150, 100 / 150, 50 / 150, np.nan],  # 50 ml of 150 ml
        ]
    )
    got = unit_step(levels, np.array([500.0, 100.0, 300.0, 150.0]))
    np.testing.assert_allclose(got, [0.02, np.nan, np.nan, 50 / 150])
