"""Adapter around the pure forecasting core: loads dirty slots, forecasts them in one call, stores results."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from ._forecast import explain, forecast_batch
from ._models import GwForecast
from ._store import GatewayStore

__all__ = ["Forecaster"]

_MAX_READINGS = 240  # the most recent readings per slot fed to the core; older ones add little


def _when(now: datetime, days: float) -> datetime | None:
    if not math.isfinite(days) or days > 3650:
        return None  # not depleting, or beyond any planning horizon
    return now + timedelta(days=max(days, 0.0))


class Forecaster:
    """Refreshes the stored forecast of every slot that received readings, a batch per tick."""

    def __init__(self, store: GatewayStore, batch_size: int = 5000) -> None:
        self.store = store
        self.batch_size = batch_size

    def refresh(self, now: datetime) -> int:
        """Forecast up to one batch of dirty slots; returns how many were refreshed."""
        slots = self.store.dirty_slots(self.batch_size)
        if not slots:
            return 0
        series = self.store.readings_since((s.device_id, s.slot_id, s.segment_start) for s in slots)
        keys = [(s.device_id, s.slot_id) for s in slots]
        width = max((min(len(series.get(k, [])), _MAX_READINGS) for k in keys), default=1) or 1
        t = np.full((len(keys), width), np.nan)
        y = np.full((len(keys), width), np.nan)
        for i, k in enumerate(keys):
            points = series.get(k, [])[-_MAX_READINGS:]
            if points:
                t[i, : len(points)] = [p[0].timestamp() for p in points]
                y[i, : len(points)] = [p[1] for p in points]
        fa = forecast_batch(t, y, now.timestamp())
        rows = []
        for i, (device_id, slot_id) in enumerate(keys):
            level = float(fa.level_now[i])
            rate = float(fa.rate_per_day[i])
            p10, p50, p90 = (float(a[i]) for a in (fa.tte_p10_days, fa.tte_p50_days, fa.tte_p90_days))
            known = not math.isnan(p50)
            rows.append(
                GwForecast(
                    device_id=device_id,
                    slot_id=slot_id,
                    computed_at=now,
                    level_now=level if known else None,
                    rate_per_day=rate if known else None,
                    empty_p10=_when(now, p10) if known else None,
                    empty_p50=_when(now, p50) if known else None,
                    empty_p90=_when(now, p90) if known else None,
                    confidence=float(fa.confidence[i]),
                    n_used=int(fa.n_used[i]),
                    explanation=explain(fa, i),
                )
            )
        self.store.write_forecasts(rows, keys)
        return len(rows)
