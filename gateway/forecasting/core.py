"""Pure forecasting core: time-to-empty per slot, vectorised over the fleet.

No I/O, no clock reads: callers pass readings as padded 2-D arrays and "now" as a number.
The method, with its maths, is written up in docs/forecasting.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Any

import numpy as np

from .away import normalise_away
from .fit import ChunkFit, fit_chunk
from .methods import CODES

__all__ = ["ForecastArrays", "explain", "forecast_batch"]

# Rows per pass: the fastest measured here (1M x 60 readings: 2048-8192 all within ~5 %); it
# bounds the temporaries to a few MiB whatever the fleet size.
_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class ForecastArrays:
    """Forecasts for S slots; every field is an array of shape (S,), NaN where unknown."""

    rate_per_day: np.ndarray  # fraction of capacity used per day (>= 0)
    level_now: np.ndarray  # estimated fraction remaining at `now`
    tte_p10_days: np.ndarray  # 10 % chance it is empty sooner than this
    tte_p50_days: np.ndarray
    tte_p90_days: np.ndarray
    confidence: np.ndarray  # 0..1: sharpness of the interval times the data's share of the evidence
    n_used: np.ndarray  # readings used per slot (int64)
    method: np.ndarray | None = None  # int8 code of a ForecastMethod (methods.CODES)
    rate_sd_per_day: np.ndarray | None = None  # posterior sd of the rate
    prior_weight: np.ndarray | None = None  # 0..1: the prior's share of the rate's precision
    step: np.ndarray | None = None  # quantisation step used (0 = unquantised)
    tte_quantiles: np.ndarray | None = None  # (S, Q) days to empty at the `quantiles` asked for


def _per_slot(value: Any, s: int, fill: float) -> np.ndarray:
    if value is None:
        return np.full(s, fill)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (s,)).copy()


def _pad_away(away: Any, s: int) -> np.ndarray | None:
    if away is None:
        return None
    if isinstance(away, np.ndarray):
        arr = np.asarray(away, dtype=np.float64)
    else:
        rows = [list(r) for r in away]
        if len(rows) != s:
            raise ValueError(f"away has {len(rows)} rows for {s} slots")
        arr = np.full((s, max((len(r) for r in rows), default=0), 2), np.nan)
        for i, r in enumerate(rows):  # one pass over the caller's Python lists, not over the maths
            if r:
                arr[i, : len(r)] = np.asarray(r, dtype=np.float64).reshape(-1, 2)
    if arr.ndim != 3 or arr.shape[0] != s or arr.shape[2] != 2:
        raise ValueError(f"away must be (S, K, 2), got {arr.shape}")
    return normalise_away(arr) if arr.shape[1] else None


def forecast_batch(
    t: np.ndarray,
    level: np.ndarray,
    now: float | np.ndarray,
    *,
    step: np.ndarray | None = None,
    away: np.ndarray | Sequence[Sequence[tuple[float, float]]] | None = None,
    prior_rate: np.ndarray | None = None,
    prior_rate_sd: np.ndarray | None = None,
    counted: np.ndarray | None = None,
    chunk: int = _CHUNK,
    quantiles: Sequence[float] = (),
) -> ForecastArrays:
    """Forecast S slots from padded readings.

    t: (S, N) seconds since the epoch (NaN = padding), any order; level: (S, N) fraction of
    capacity remaining (0..1, NaN = padding or unknown); now: seconds since the epoch, scalar or
    (S,). step: (S,) quantisation step (0 = none, NaN or omitted = detect). away: per slot
    (start, end) seconds with no household use, as an (S, K, 2) NaN-padded array or S lists.
    prior_rate, prior_rate_sd: (S,) population prior of the rate (fraction/day; NaN = none).
    counted: (S,) bool, True where the level counts whole units (unit `count`, with step = 1 unit).
    quantiles: extra probabilities (0..1) of being empty sooner, returned in `tte_quantiles`.
    """
    t = np.atleast_2d(np.asarray(t, dtype=np.float64))
    y = np.atleast_2d(np.asarray(level, dtype=np.float64))
    if t.shape != y.shape:
        raise ValueError(f"t {t.shape} and level {y.shape} differ")
    if t.shape[1] == 0:  # no readings at all: one column of padding keeps the maths uniform
        t = y = np.full((t.shape[0], 1), np.nan)
    s = t.shape[0]
    now_a = _per_slot(now, s, np.nan)
    step_a = _per_slot(step, s, np.nan)
    mu0 = _per_slot(prior_rate, s, np.nan)
    sd0 = _per_slot(prior_rate_sd, s, np.nan)
    away_a = _pad_away(away, s)
    counted_a = None if counted is None else np.broadcast_to(np.asarray(counted, dtype=bool), (s,))
    if any(not 0 < q < 1 for q in quantiles):
        raise ValueError(f"quantiles must lie strictly between 0 and 1, got {quantiles}")
    zs = tuple(NormalDist().inv_cdf(q) for q in quantiles)
    names = [f.name for f in fields(ChunkFit)]
    out = {k: np.empty((s, len(zs)) if k == "extra" else s) for k in names}
    size = max(int(chunk), 1)
    for lo in range(0, s, size):
        sl = slice(lo, lo + size)
        part = fit_chunk(
            t[sl], y[sl], now_a[sl], step_a[sl], None if away_a is None else away_a[sl], mu0[sl], sd0[sl], zs,
            None if counted_a is None else counted_a[sl],
        )
        for k in names:
            out[k][sl] = getattr(part, k)
    return ForecastArrays(
        rate_per_day=out["rate"],
        level_now=out["level"],
        tte_p10_days=out["p10"],
        tte_p50_days=out["p50"],
        tte_p90_days=out["p90"],
        confidence=out["confidence"],
        n_used=out["n_used"].astype(np.int64),
        method=out["method"].astype(np.int8),
        rate_sd_per_day=out["rate_sd"],
        prior_weight=out["prior_weight"],
        step=out["step"],
        tte_quantiles=out["extra"] if zs else None,
    )


def _num(x: Any) -> float | None:
    v = float(x)
    return v if np.isfinite(v) else None


def explain(fa: ForecastArrays, i: int) -> dict[str, Any]:
    """The forecast of slot i as JSON-able plain values (None where unknown or infinite)."""
    p50 = float(fa.tte_p50_days[i])

    def pick(a: np.ndarray | None) -> float | None:
        return None if a is None else _num(a[i])

    return {
        "method": str(CODES[int(fa.method[i])]) if fa.method is not None else "unknown",
        "rate_per_day": _num(fa.rate_per_day[i]),
        "rate_sd_per_day": pick(fa.rate_sd_per_day),
        "level_now": _num(fa.level_now[i]),
        "tte_days": {"p10": _num(fa.tte_p10_days[i]), "p50": _num(p50), "p90": _num(fa.tte_p90_days[i])},
        "never_empties": bool(np.isposinf(p50)),
        "readings_used": int(fa.n_used[i]),
        "confidence": float(fa.confidence[i]),
        "prior_weight": pick(fa.prior_weight),
        "step": pick(fa.step),
    }
