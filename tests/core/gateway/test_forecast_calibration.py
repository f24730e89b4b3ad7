"""The forecast's interval against a known bursty process: P10 must be honest (item 5 of issue 4)."""

from __future__ import annotations

import numpy as np

from gateway.forecasting import forecast_batch

DAY = 86_400.0
HORIZON = 400  # days simulated: every slot in the test empties well before


def simulate(s: int, seed: int, bursts_per_day: tuple[float, float], read_days: int = 40, weekends: bool = False):
    """Slots used in Poisson bursts of exponential size on weekdays, read once a day at a random hour.

    Returns reading times and levels (S, read_days), now (S,), and the true days to empty after now.
    """
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.005, 0.02, s)  # mean use, fraction per day
    lam = rng.uniform(*bursts_per_day, s)  # bursts per active day
    active = np.ones(HORIZON) if weekends else (np.arange(HORIZON) % 7 < 5).astype(float)
    active /= active.mean()
    count = rng.poisson(lam[:, None] * active[None, :])
    use = np.where(count > 0, rng.gamma(np.maximum(count, 1), 1.0), 0.0) * (rate / lam)[:, None]
    used_by = np.cumsum(use, axis=1)  # a day's use happens at noon
    when = np.arange(read_days)[None, :] + rng.uniform(0, 1, (s, read_days))
    noon_before = np.floor(when - 0.5).astype(int)
    used = np.where(noon_before >= 0, np.take_along_axis(used_by, np.clip(noon_before, 0, None), axis=1), 0.0)
    level = 1.0 - used + rng.normal(0, 0.005, used.shape)
    now = when[:, -1]
    empty = np.argmax(used_by >= 1.0, axis=1) + 0.5
    return when * DAY, level, now * DAY, empty - now


def test_p10_covers_about_ninety_percent_of_bursty_weekday_use():
    coverage = []
    for seed in range(3):
        t, y, now, truth = simulate(3000, seed, bursts_per_day=(0.5, 3.0))
        fa = forecast_batch(t, y, now)
        live = truth > 0  # a few heavy users ran dry before "now": nothing left to forecast
        assert np.all(np.isfinite(fa.tte_p10_days)) and live.mean() > 0.97
        coverage.append(np.mean(truth[live] >= fa.tte_p10_days[live]))
        assert 0.4 < np.mean(truth[live] <= fa.tte_p50_days[live]) < 0.6  # the median is a median
    assert all(0.85 <= c <= 0.95 for c in coverage), coverage


def test_the_interval_widens_with_burstiness():
    width = {}
    for name, lam in {"steady": (20.0, 20.0), "bursty": (0.3, 0.3)}.items():
        t, y, now, truth = simulate(1000, 5, bursts_per_day=lam, weekends=True)
        fa = forecast_batch(t[truth > 0], y[truth > 0], now[truth > 0])
        width[name] = np.median((fa.tte_p90_days - fa.tte_p10_days) / fa.tte_p50_days)
    assert width["bursty"] > 2 * width["steady"]
