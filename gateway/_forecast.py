"""Pure forecasting core: time-to-empty per slot, vectorised over the fleet.

No I/O, no clock reads: callers pass readings as padded 2-D arrays and "now" as a number.
Placeholder maths (a masked least-squares line); issue 4 replaces the internals, not the interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ForecastArrays", "forecast_batch"]

_DAY = 86_400.0
_Z90 = 1.2815515655446004  # one-sided 90 % normal quantile


@dataclass(frozen=True, slots=True)
class ForecastArrays:
    """Forecasts for S slots; every field is a float array of shape (S,), NaN where unknown."""

    rate_per_day: np.ndarray  # fraction of capacity used per day (>0 means depleting)
    level_now: np.ndarray  # estimated fraction remaining at `now`
    tte_p10_days: np.ndarray  # 10 % chance it is empty sooner than this
    tte_p50_days: np.ndarray
    tte_p90_days: np.ndarray
    confidence: np.ndarray  # 0..1
    n_used: np.ndarray  # readings used per slot (int64)


def forecast_batch(t: np.ndarray, level: np.ndarray, now: float | np.ndarray) -> ForecastArrays:
    """Forecast S slots from padded readings.

    t: (S, N) seconds since the epoch (NaN = padding); level: (S, N) fraction of capacity
    remaining (0..1, NaN = padding or unknown); now: seconds since the epoch, scalar or (S,).
    """
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(level, dtype=np.float64)
    mask = ~(np.isnan(t) | np.isnan(y))
    n = mask.sum(axis=1)
    x = np.where(mask, t / _DAY, 0.0)
    yy = np.where(mask, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = x.sum(axis=1) / n
        my = yy.sum(axis=1) / n
        dx = np.where(mask, x - mx[:, None], 0.0)
        dy = np.where(mask, yy - my[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        slope = (dx * dy).sum(axis=1) / sxx
        resid = np.where(mask, dy - slope[:, None] * dx, 0.0)
        s2 = (resid * resid).sum(axis=1) / np.maximum(n - 2, 1)
        se = np.sqrt(s2 / sxx)
        now_d = np.broadcast_to(np.asarray(now, dtype=np.float64) / _DAY, n.shape)
        level_now = np.clip(my + slope * (now_d - mx), 0.0, 1.0)
        rate = -slope
        rate_hi = rate + _Z90 * se
        rate_lo = rate - _Z90 * se
        p50 = np.where(rate > 0, level_now / rate, np.inf)
        p10 = np.where(rate_hi > 0, level_now / rate_hi, np.inf)
        p90 = np.where(rate_lo > 0, level_now / rate_lo, np.inf)
        conf = np.clip(1.0 - np.where(rate > 0, se / rate, 1.0), 0.0, 1.0)
    ok = n >= 3
    nan = np.nan
    return ForecastArrays(
        rate_per_day=np.where(ok, rate, nan),
        level_now=np.where(ok, level_now, nan),
        tte_p10_days=np.where(ok, p10, nan),
        tte_p50_days=np.where(ok, p50, nan),
        tte_p90_days=np.where(ok, p90, nan),
        confidence=np.where(ok, conf, 0.0),
        n_used=n.astype(np.int64),
    )
