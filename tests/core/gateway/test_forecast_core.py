"""Known-answer tests of the pure forecasting core (gateway._forecast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.forecasting import ForecastArrays, explain, forecast_batch, population_prior

DAY = 86_400.0
T0 = 1_700_000_000.0  # an arbitrary epoch second: the core only sees differences


def line(days: np.ndarray, start: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Readings of a slot used at a constant rate, as one (1, N) row."""
    return (T0 + days * DAY)[None, :], (start - rate * days)[None, :]


def one(fa: ForecastArrays, i: int = 0) -> dict:
    return explain(fa, i)


# --- the straight line ---------------------------------------------------------------------


def test_constant_use_gives_rate_level_and_median_time_to_empty():
    t, y = line(np.arange(30.0), 1.0, 0.01)
    e = one(forecast_batch(t, y, T0 + 29 * DAY))
    assert e["method"] == "level regression"
    assert e["rate_per_day"] == pytest.approx(0.01, rel=1e-5)
    assert e["level_now"] == pytest.approx(0.71, abs=1e-6)
    assert e["tte_days"]["p50"] == pytest.approx(71.0, rel=1e-5)
    assert e["tte_days"]["p10"] < 71.0 < e["tte_days"]["p90"]
    assert e["readings_used"] == 30


def test_now_after_the_last_reading_uses_up_the_gap():
    t, y = line(np.arange(30.0), 1.0, 0.01)
    e = one(forecast_batch(t, y, T0 + 39 * DAY))
    assert e["level_now"] == pytest.approx(0.61, abs=1e-6)
    assert e["tte_days"]["p50"] == pytest.approx(61.0, rel=1e-5)


def test_no_depletion_never_empties():
    t, y = line(np.arange(20.0), 0.613, 0.0)  # off any step grid: a continuous sensor
    e = one(forecast_batch(t, y, T0 + 19 * DAY))
    assert e["rate_per_day"] == 0.0
    assert e["tte_days"]["p50"] is None and e["never_empties"] is True
    assert e["confidence"] == 0.0  # no run-out date to be sure of


def test_empty_now_is_zero_days():
    t, y = line(np.arange(11.0), 0.1, 0.01)
    fa = forecast_batch(t, y, T0 + 20 * DAY)
    assert fa.level_now[0] == 0.0
    assert fa.tte_p10_days[0] == fa.tte_p50_days[0] == 0.0
    assert fa.tte_p90_days[0] > 0.0


# --- 7: order, duplicates, ragged rows ---------------------------------------------------------


def test_unsorted_rows_and_duplicate_timestamps_give_the_sorted_answer():
    rng = np.random.default_rng(7)
    days = np.arange(25.0)
    t, y = line(days, 0.9, 0.015)
    y = y + rng.normal(0, 0.01, y.shape)
    ref = forecast_batch(t, y, T0 + 25 * DAY)
    perm = rng.permutation(25)
    dup = np.r_[perm, perm[:5]]  # five readings redelivered (QoS 1)
    fa = forecast_batch(t[:, perm], y[:, perm], T0 + 25 * DAY)
    fd = forecast_batch(t[:, dup], y[:, dup], T0 + 25 * DAY)
    assert fa.tte_p50_days[0] == pytest.approx(ref.tte_p50_days[0], rel=1e-5)
    assert fa.tte_p10_days[0] == pytest.approx(ref.tte_p10_days[0], rel=1e-5)
    assert fd.rate_per_day[0] == pytest.approx(0.015, rel=0.15)
    assert np.isfinite(fd.tte_p10_days[0])


def test_a_ragged_batch_equals_its_rows_forecast_one_by_one():
    rng = np.random.default_rng(3)
    s, n = 6, 40
    t = np.full((s, n), np.nan)
    y = np.full((s, n), np.nan)
    for i in range(s):
        k = 5 + 6 * i
        days = np.sort(rng.uniform(0, 30, k))
        t[i, :k] = T0 + days * DAY
        y[i, :k] = 0.95 - 0.012 * (i + 1) / 3 * days + rng.normal(0, 0.005, k)
    t[2, [1, 4]] = np.nan  # holes in the middle, not only at the end
    y[3, 2] = np.nan  # a level reported as unknown
    now = T0 + 31 * DAY + np.arange(s) * 3600.0
    fa = forecast_batch(t, y, now, chunk=4)
    for i in range(s):
        fi = forecast_batch(t[i : i + 1], y[i : i + 1], now[i])
        for name in ("rate_per_day", "level_now", "tte_p10_days", "tte_p50_days", "tte_p90_days", "confidence"):
            assert getattr(fa, name)[i] == pytest.approx(getattr(fi, name)[0], rel=1e-6), name
        assert fa.n_used[i] == fi.n_used[0]
    assert fa.n_used[2] == 15 and fa.n_used[3] == 22


def test_rows_do_not_leak_into_their_neighbours_whatever_the_chunk():
    # The core takes differences along the flat chunk, where a row's last column meets the next
    # row's first: quantised, refilled, unsorted and ragged rows side by side must not see each other.
    rng = np.random.default_rng(5)
    s, n = 40, 30
    days = np.cumsum(rng.exponential(0.5, (s, n)), axis=1)
    y = 1.0 - 0.01 * days + rng.normal(0, 0.005, (s, n))
    y[::3] = np.round(np.clip(y[::3], 0, 1) * 10) / 10
    y[1::7, n // 2 :] += 0.4  # a refill left in
    t = T0 + days * DAY
    t[::5, [3, 4]] = t[::5, [4, 3]]
    k = rng.integers(2, n + 1, s)
    pad = np.arange(n)[None, :] >= k[:, None]
    t[pad] = y[pad] = np.nan
    now = T0 + (np.nanmax(days, axis=1) + 1) * DAY
    whole = forecast_batch(t, y, now)
    for chunk in (1, 3, 16):
        part = forecast_batch(t, y, now, chunk=chunk)
        for name in ("n_used", "step", "method"):
            np.testing.assert_array_equal(getattr(part, name), getattr(whole, name), err_msg=f"{name}, chunk {chunk}")
        for name in ("rate_per_day", "level_now", "tte_p10_days", "tte_p50_days", "tte_p90_days"):
            # float32 sums: BLAS adds in another order for another number of rows
            np.testing.assert_allclose(getattr(part, name), getattr(whole, name), rtol=1e-5, err_msg=f"{name}, chunk {chunk}")


def test_padding_does_not_change_the_answer():
    rng = np.random.default_rng(11)
    days = np.sort(rng.uniform(0, 30, 25))
    t, y = (T0 + days * DAY)[None], (0.9 - 0.01 * days + rng.normal(0, 0.01, 25))[None]
    q = np.round(y * 10) / 10
    for lv in (y, q):
        ref = forecast_batch(t, lv, T0 + 31 * DAY)
        for width in (1, 2, 7):
            pad = np.full((1, width), np.nan)
            fa = forecast_batch(np.c_[t, pad], np.c_[lv, pad], T0 + 31 * DAY)
            for name in ("rate_per_day", "rate_sd_per_day", "tte_p10_days", "tte_p50_days", "tte_p90_days"):
                assert getattr(fa, name)[0] == pytest.approx(getattr(ref, name)[0], rel=1e-5), (name, width)


def test_readings_all_at_one_instant_carry_no_rate():
    t = np.full((1, 4), T0)
    y = np.array([[0.7, 0.71, 0.69, 0.7]])
    e = one(forecast_batch(t, y, T0 + DAY))
    assert e["method"] == "none" and e["tte_days"]["p50"] is None
    e = one(forecast_batch(t, y, T0 + DAY, prior_rate=[0.01], prior_rate_sd=[0.002]))
    assert e["method"] == "prior only" and e["level_now"] == pytest.approx(0.69, abs=1e-6)


# --- 1: quantised levels -----------------------------------------------------------------------


def test_quantised_levels_regress_on_the_step_downs():
    days = np.arange(0.0, 40.0, 0.5)
    true = 1.0 - 0.013 * days
    reported = np.round(true * 10) / 10  # the device rounds to 10 % steps
    fa = forecast_batch((T0 + days * DAY)[None], reported[None], T0 + days[-1] * DAY)
    e = one(fa)
    assert e["method"] == "step-down regression"
    assert e["step"] == pytest.approx(0.1)
    assert e["rate_per_day"] == pytest.approx(0.013, rel=0.03)
    assert e["level_now"] == pytest.approx(true[-1], abs=0.01)
    assert e["readings_used"] == 5  # 0.9, 0.8, 0.7, 0.6, 0.5: not the 80 samples
    assert e["tte_days"]["p50"] == pytest.approx(true[-1] / 0.013, rel=0.06)


def test_flicker_between_two_steps_is_neither_a_step_down_nor_a_refill():
    rng = np.random.default_rng(5)
    days = np.arange(0.0, 40.0, 0.5)
    true = 1.0 - 0.013 * days + rng.normal(0, 0.008, days.size)  # noise makes it flicker at each edge
    reported = np.round(true * 10) / 10
    assert np.any(np.diff(reported) > 0)
    e = one(forecast_batch((T0 + days * DAY)[None], reported[None], T0 + days[-1] * DAY))
    assert e["method"] == "step-down regression" and e["readings_used"] == 5
    assert e["rate_per_day"] == pytest.approx(0.013, rel=0.08)


def test_all_samples_would_bias_quantised_rate_but_step_downs_do_not():
    # Long plateaus then a drop: a line through every sample sees mostly flat data near the end.
    days = np.arange(0.0, 16.0, 0.25)
    reported = np.round((0.85 - 0.02 * days) * 10) / 10
    fa = forecast_batch((T0 + days * DAY)[None], reported[None], T0 + 16 * DAY, step=np.array([0.1]))
    assert fa.rate_per_day[0] == pytest.approx(0.02, rel=0.05)


def test_a_flat_quantised_series_is_bounded_use_not_no_use():
    days = np.arange(21.0)
    t, y = (T0 + days * DAY)[None], np.full((1, 21), 0.5)
    e = one(forecast_batch(t, y, T0 + 20 * DAY, step=np.array([0.1])))
    # It stayed inside one 10 % band for 20 days: the rate is somewhere in [0, 0.1 / 20].
    assert e["method"] == "step bound"
    assert e["rate_per_day"] == pytest.approx(0.0025)
    assert e["rate_sd_per_day"] == pytest.approx(0.005 / np.sqrt(12))
    assert e["tte_days"]["p50"] == pytest.approx(200.0)
    assert e["never_empties"] is False


def test_step_is_detected_per_row():
    days = np.arange(12.0)
    t = np.tile(T0 + days * DAY, (4, 1))
    y = np.stack(
        [
            np.round((1 - 0.03 * days) * 10) / 10,  # 10 % steps
            np.round((1 - 0.06 * days) * 4) / 4,  # 4 bars
            1 - 0.0123 * days,  # continuous
            np.round((1 - 0.03 * days) * 20) / 20,  # 5 % steps
        ]
    )
    fa = forecast_batch(t, y, T0 + 12 * DAY)
    assert fa.step.tolist() == pytest.approx([0.1, 0.25, 0.0, 0.05])
    assert forecast_batch(t, y, T0, step=np.zeros(4)).step.tolist() == [0, 0, 0, 0]


def test_a_count_is_the_top_of_its_band_so_the_last_unit_is_not_forecast_half_a_unit_late():
    # Five doses, one used every 10 days (days 5.5, 15.5, 25.5, 35.5): a daily count 5, 4, 3, 2, 1.
    days = np.arange(41.0)
    count = 5 - np.searchsorted(np.array([5.5, 15.5, 25.5, 35.5]), days)
    t, y = (T0 + days * DAY)[None], (count / 5)[None]
    kw = {"step": np.array([0.2])}
    counted = one(forecast_batch(t, y, T0 + 40 * DAY, counted=np.array([True]), **kw))
    rounded = one(forecast_batch(t, y, T0 + 40 * DAY, **kw))
    # The last dose goes at day 45.5: 5.5 days on. Read as a rounded level, "1" would be 0.5-1.5
    # doses and the run-out 10.5 days on, half a dose (5 days) late.
    assert counted["method"] == "step-down regression"
    assert counted["rate_per_day"] == pytest.approx(0.02, rel=1e-4)
    assert counted["tte_days"]["p50"] == pytest.approx(5.5, rel=1e-3)
    assert rounded["tte_days"]["p50"] == pytest.approx(10.5, rel=1e-3)


def test_the_step_bound_counts_steps_descended_not_step_downs():
    # One drop of three 10 % steps between two readings a day apart, then flat: used 0.2-0.4 in 3 days.
    days = np.arange(4.0)
    t, y = (T0 + days * DAY)[None], np.array([[0.9, 0.9, 0.6, 0.6]])
    e = one(forecast_batch(t, y, T0 + 3 * DAY, step=np.array([0.1])))
    assert e["method"] == "step bound"
    assert e["rate_per_day"] == pytest.approx(0.3 / 3)
    assert e["rate_sd_per_day"] == pytest.approx(0.2 / 3 / np.sqrt(12))


def test_a_quantised_level_noisier_than_its_step_is_fitted_as_a_plain_level():
    # A scale in 10 g steps of a 250 g bag (4 %) with 10 g of noise: new lows are often dips.
    rng = np.random.default_rng(3)
    days = np.arange(0.0, 6.0, 0.25)
    true = 0.9 - 0.1 * days
    y = np.round((true + rng.normal(0, 0.04, days.size)) / 0.04) * 0.04
    assert np.sum(np.diff(y) > 0.06) >= 2  # rises of two steps
    e = one(forecast_batch((T0 + days * DAY)[None], y[None], T0 + days[-1] * DAY, step=np.array([0.04])))
    assert e["method"] == "level regression" and e["step"] == 0.0
    assert e["rate_per_day"] == pytest.approx(0.1, rel=0.1)
    # One such rise alone (a top-up the gateway did not see) does not make a row noisy.
    flat = np.array([[0.2, 0.2, 0.1, 0.0, 0.0, 0.3, 0.3, 0.2, 0.2]])
    e = one(forecast_batch((T0 + np.arange(9.0) * DAY)[None], flat, T0 + 8 * DAY, step=np.array([0.1])))
    assert e["step"] == 0.1


def test_a_slow_level_in_whole_percent_is_a_band_not_noise():
    # A toner at 0.1 %/day, reported four times a day in whole percent: "1 %" for ten days.
    days = np.arange(0.0, 90.0, 0.25)
    true = 0.1 - 0.001 * days
    y = np.round(true * 100) / 100
    e = one(forecast_batch((T0 + days * DAY)[None], y[None], T0 + days[-1] * DAY))
    assert e["step"] == pytest.approx(0.01) and e["method"] == "step-down regression"
    assert e["rate_per_day"] == pytest.approx(0.001, rel=0.02)
    assert e["level_now"] == pytest.approx(true[-1], abs=0.001)  # from the last step-down, not the band's centre
    assert e["tte_days"]["p10"] < true[-1] / 0.001 < e["tte_days"]["p90"]


# --- 2: noise ----------------------------------------------------------------------------------


def test_noisy_levels_average_out_and_widen_the_interval():
    rng = np.random.default_rng(2)
    s, days = 400, np.arange(40.0)
    t = np.tile(T0 + days * DAY, (s, 1))
    clean = np.tile(1.0 - 0.01 * days, (s, 1))
    noisy = clean + rng.normal(0, 0.01, clean.shape)
    now = T0 + 39 * DAY
    fc, fn = forecast_batch(t, clean, now), forecast_batch(t, noisy, now)
    assert np.median(fn.rate_per_day) == pytest.approx(0.01, rel=0.02)
    assert np.median(fn.tte_p50_days) == pytest.approx(61.0, rel=0.02)
    assert np.median(fn.tte_p90_days - fn.tte_p10_days) > fc.tte_p90_days[0] - fc.tte_p10_days[0]
    covered = (fn.tte_p10_days <= 61.0) & (61.0 <= fn.tte_p90_days)
    assert covered.mean() > 0.9


# --- 3 and 4: refills, receptacles ---------------------------------------------------------------


def test_a_big_upward_jump_starts_a_new_segment():
    before = np.arange(20.0)
    after = np.arange(20.0, 31.0)
    days = np.r_[before, after]
    y = np.r_[1.0 - 0.02 * before, 0.95 - 0.03 * (after - 20)]
    e = one(forecast_batch((T0 + days * DAY)[None], y[None], T0 + 30 * DAY))
    assert e["readings_used"] == 11
    assert e["rate_per_day"] == pytest.approx(0.03, rel=1e-4)
    assert e["level_now"] == pytest.approx(0.65, abs=1e-5)


def test_a_small_upward_blip_is_noise_not_a_refill():
    days = np.arange(30.0)
    y = 1.0 - 0.01 * days
    y[15] += 0.04
    e = one(forecast_batch((T0 + days * DAY)[None], y[None], T0 + 29 * DAY))
    assert e["readings_used"] == 30
    assert e["rate_per_day"] == pytest.approx(0.01, rel=0.05)


def test_a_filling_receptacle_is_forecast_through_its_headroom():
    days = np.arange(40.0)
    fill = 0.01 * days  # waste toner: 1 % of the bin per day
    headroom = 1.0 - fill  # the caller's contract: remaining headroom
    e = one(forecast_batch((T0 + days * DAY)[None], headroom[None], T0 + 39 * DAY))
    assert e["rate_per_day"] == pytest.approx(0.01, rel=1e-5)
    assert e["tte_days"]["p50"] == pytest.approx(61.0, rel=1e-4)  # full in 61 days


# --- 6: away periods -----------------------------------------------------------------------------


def test_away_time_is_left_out_of_the_rate():
    # 1 %/day, except a 10-day holiday (days 10-20) with no use.
    days = np.arange(31.0)
    used = 0.01 * np.minimum(days, 10) + 0.01 * np.clip(days - 20, 0, None)
    t, y = (T0 + days * DAY)[None], (1.0 - used)[None]
    away = np.array([[[T0 + 10 * DAY, T0 + 20 * DAY]]])
    home = forecast_batch(t, y, T0 + 30 * DAY, away=away)
    blind = forecast_batch(t, y, T0 + 30 * DAY)
    assert home.rate_per_day[0] == pytest.approx(0.01, rel=1e-4)
    assert home.tte_p50_days[0] == pytest.approx(80.0, rel=1e-4)
    assert blind.rate_per_day[0] < 0.009  # diluted by the holiday


def test_future_away_before_run_out_pushes_it_out_and_later_away_does_not():
    t, y = line(np.arange(21.0), 0.7, 0.01)  # level 0.5 at day 20: P50 = 50 days
    now = T0 + 20 * DAY
    trips = [[(now + 20 * DAY, now + 30 * DAY), (now + 100 * DAY, now + 120 * DAY)]]
    fa = forecast_batch(t, y, now, away=trips)
    assert fa.tte_p50_days[0] == pytest.approx(60.0, rel=1e-5)
    as_array = forecast_batch(t, y, now, away=np.array(trips))
    assert as_array.tte_p50_days[0] == fa.tte_p50_days[0]
    assert fa.tte_p10_days[0] < 60.0 < fa.tte_p90_days[0]


def test_overlapping_away_periods_and_now_inside_one():
    t, y = line(np.arange(21.0), 0.7, 0.01)  # level 0.5 at day 20
    day = lambda d: T0 + d * DAY  # noqa: E731
    trips = np.array([[[day(25), day(32)], [day(21), day(27)], [np.nan, np.nan]]])
    fa = forecast_batch(t, y, day(22), away=trips)
    # One day of use (20 -> 21) before leaving, home at day 32, then 49 days: 10 + 49 from day 22.
    assert fa.level_now[0] == pytest.approx(0.49, abs=1e-6)
    assert fa.tte_p50_days[0] == pytest.approx(59.0, rel=1e-5)


# --- 8: cold start and priors --------------------------------------------------------------------


def test_cold_start_falls_back_to_the_prior():
    t = np.array([[T0, T0 + DAY, np.nan], [np.nan] * 3, [np.nan] * 3])
    y = np.array([[0.8, 0.79, np.nan], [np.nan] * 3, [np.nan] * 3])
    mu = np.array([0.02, 0.02, np.nan])
    fa = forecast_batch(t, y, T0 + DAY, prior_rate=mu, prior_rate_sd=np.array([0.005, 0.005, np.nan]))
    e = one(fa, 0)
    assert e["method"] == "prior only" and e["prior_weight"] == 1.0 and e["confidence"] == 0.0
    assert e["rate_per_day"] == pytest.approx(0.02)
    assert e["tte_days"]["p50"] == pytest.approx(0.79 / 0.02, rel=1e-6)
    assert fa.rate_per_day[1] == pytest.approx(0.02) and np.isnan(fa.tte_p50_days[1])  # no level
    assert one(fa, 2)["method"] == "none" and np.isnan(fa.tte_p50_days[2])


def test_prior_and_data_combine_by_precision_in_log_space():
    rng = np.random.default_rng(8)
    days = np.arange(10.0)
    t, y = (T0 + days * DAY)[None], (0.9 - 0.01 * days + rng.normal(0, 0.01, 10))[None]
    data = forecast_batch(t, y, T0 + 9 * DAY)
    # A prior median below the data's rate (0.0066), so that the data's burst prior is its own (step 5).
    mu, sd = 0.005, 0.001
    both = forecast_batch(t, y, T0 + 9 * DAY, prior_rate=np.array([mu]), prior_rate_sd=np.array([sd]))
    # Log-rates: the data's has variance (sd/r)^2, the log-normal prior's log(1 + (sd0/mu0)^2).
    r, sd_d = data.rate_per_day[0], data.rate_sd_per_day[0]
    pd, pp = (r / sd_d) ** 2, 1 / np.log1p((sd / mu) ** 2)
    rate = np.exp((pd * np.log(r) + pp * np.log(mu)) / (pd + pp))
    assert both.rate_per_day[0] == pytest.approx(rate, rel=1e-6)
    assert both.rate_sd_per_day[0] == pytest.approx(rate * (pd + pp) ** -0.5, rel=1e-6)
    assert both.prior_weight[0] == pytest.approx(pp / (pd + pp), rel=1e-6)


def test_a_heavy_user_escapes_the_fleet_prior_faster_in_log_space():
    days = np.arange(8.0)
    t, y = (T0 + days * DAY)[None], (0.9 - 0.05 * days)[None]  # five times the fleet's median
    fa = forecast_batch(t + np.random.default_rng(1).normal(0, 3600, t.shape), y, T0 + 7 * DAY, prior_rate=[0.01], prior_rate_sd=[0.005])
    assert fa.rate_per_day[0] > 0.04  # a normal prior with the same sd would hold it near 0.02


def test_confidence_grows_with_data():
    rng = np.random.default_rng(4)
    days = np.arange(60.0)
    t, y = T0 + days * DAY, 1.0 - 0.01 * days + rng.normal(0, 0.005, 60)
    conf = []
    for k in (2, 4, 8, 16, 32, 60):
        fa = forecast_batch(t[None, :k], y[None, :k], t[k - 1], prior_rate=[0.01], prior_rate_sd=[0.005])
        conf.append(fa.confidence[0])
    assert conf[0] == 0.0
    assert all(a < b for a, b in zip(conf, conf[1:]))
    assert conf[-1] > 0.8


def test_population_prior_is_median_and_scaled_mad_per_group():
    rates = np.array([0.01, 0.02, 0.03, 0.10, 0.05, 0.05, np.nan, 0.04])
    groups = np.array(["hp/black", "hp/black", "hp/black", "hp/black", "brita", "brita", "brita", "x"])
    ids, med, sd = population_prior(rates, groups)
    assert ids.tolist() == ["brita", "hp/black", "x"]
    assert med.tolist() == pytest.approx([0.05, 0.025, 0.04])
    # hp/black: |r - 0.025| = 0.015, 0.005, 0.005, 0.075 -> MAD 0.01
    assert sd.tolist() == pytest.approx([0.0, 0.01 * 1.482602218505602, 0.0])
    empty = population_prior(np.array([]), np.array([], dtype=int))
    assert [len(a) for a in empty] == [0, 0, 0]


# --- 9: explanation -------------------------------------------------------------------------------


def test_explain_is_plain_json():
    t, y = line(np.arange(30.0), 1.0, 0.01)
    fa = forecast_batch(np.r_[t, t], np.r_[y, np.full_like(y, 0.5)], T0 + 29 * DAY)
    for i in range(2):
        e = explain(fa, i)
        assert json.loads(json.dumps(e, allow_nan=False)) == e
    assert explain(fa, 0)["tte_days"]["p50"] == pytest.approx(71.0, rel=1e-5)
    assert set(explain(fa, 1)) >= {"method", "rate_per_day", "level_now", "tte_days", "readings_used", "confidence"}


# --- robustness ------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(0, 90), st.just(float("nan"))),
            st.one_of(st.floats(-0.1, 1.1), st.sampled_from([0.0, 0.3, 0.5, 1.0, float("nan")])),
        ),
        min_size=0,
        max_size=25,
    ),
    st.floats(0, 120),
    st.sampled_from([None, 0.0, 0.1]),
    st.one_of(st.none(), st.tuples(st.floats(0, 150), st.floats(0, 30))),
)
def test_any_readings_give_ordered_quantiles_in_range(points, now_day, step, trip):
    n = max(len(points), 1)
    t = np.full((1, n), np.nan)
    y = np.full((1, n), np.nan)
    for j, (d, lvl) in enumerate(points):
        t[0, j], y[0, j] = T0 + d * DAY, lvl
    away = None if trip is None else [[(T0 + trip[0] * DAY, T0 + (trip[0] + trip[1]) * DAY)]]
    fa = forecast_batch(
        t,
        y,
        T0 + now_day * DAY,
        step=None if step is None else np.array([step]),
        away=away,
        prior_rate=[0.01],
        prior_rate_sd=[0.01],
    )
    p10, p50, p90 = fa.tte_p10_days[0], fa.tte_p50_days[0], fa.tte_p90_days[0]
    assert 0.0 <= fa.confidence[0] <= 1.0
    assert fa.rate_per_day[0] >= 0.0
    if not np.isnan(p50):
        assert 0.0 <= p10 <= p50 <= p90
        assert 0.0 <= fa.level_now[0] <= 1.0
