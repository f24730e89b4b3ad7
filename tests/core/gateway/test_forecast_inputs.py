"""The forecasting core's inputs from stored readings: thinning and the round units of scales and meters; pure."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.forecasting import forecast_batch, thin_readings, unit_step


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
