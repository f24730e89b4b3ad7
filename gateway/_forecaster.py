"""Adapter around the pure forecasting core: loads dirty slots, forecasts them in one call, stores results.

It also learns the cold-start priors (per device model and slot, from the fleet's own
data-rich forecasts, kept in memory and rebuilt from the stored forecasts once per simulated
day) and turns the household's away periods into the core's input. docs/forecasting.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from ._forecast import MEASURED_METHODS, ForecastArrays, explain, forecast_batch, population_prior
from ._models import GwForecast, GwSlot
from ._store import GatewayStore

__all__ = ["AwayProvider", "Forecaster", "Prior", "away_from", "thin_readings"]

# Given the device ids being refreshed, each one's away periods (start, end): no use meanwhile (SPEC 4).
AwayProvider = Callable[[Sequence[str]], Mapping[str, Sequence[tuple[datetime, datetime]]]]
Prior = tuple[float, float]  # rate per active day (fraction of capacity) and its sd

_MAX_READINGS = 240  # readings per slot fed to the core: past this, more add little but cost time
_ID_CHUNK = 5000  # ids per IN (...) query: SQLite allows 32,766 bound variables
# A forecast teaches the fleet's prior only when its own readings carry it: a regression whose
# rate owes less than this share of its precision to a prior (no echo of the prior back into it).
_TEACH_PRIOR_WEIGHT = 0.2
_MIN_FLEET = 5  # slots per (model, slot) before their median and spread mean anything
# Floor of the prior's log-sd: a household's rate is never known to better than a factor of
# e^0.5 = 1.65 from its neighbours' (the simulated fleet's households spread by about e^0.7).
_PRIOR_MIN_LOG_SD = 0.5


def _when(now: datetime, days: float) -> datetime | None:
    if not math.isfinite(days) or days > 3650:
        return None  # not depleting, or beyond any planning horizon
    return now + timedelta(days=max(days, 0.0))


def thin_readings(t: np.ndarray, y: np.ndarray, limit: int = _MAX_READINGS) -> np.ndarray:
    """Indices (sorted) of at most `limit` readings that keep what the core uses, over the whole segment.

    Every change of level and the reading before it are kept (a quantised series' step-downs are
    timed by that pair), then the first and last readings, then evenly spaced others. A series
    that changes at every reading (noisy sensors) is subsampled evenly instead: the span, which
    sets the rate's precision, is kept either way.
    """
    n = len(y)
    if n <= limit:
        return np.arange(n)
    change = np.flatnonzero(y[1:] != y[:-1]) + 1
    keep = np.unique(np.r_[0, n - 1, change, change - 1])
    if len(keep) > limit:
        return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
    spare = limit - len(keep)
    rest = np.setdiff1d(np.arange(n), keep, assume_unique=True)
    fill = rest[np.linspace(0, len(rest) - 1, spare).round().astype(np.int64)] if spare and len(rest) else rest[:0]
    return np.union1d(keep, fill)


_UNITS = (50.0, 25.0, 10.0, 5.0)  # round amounts a scale or a meter reports in, coarsest first
_MIN_UNIT_STEP = 0.005  # finer than half a percent of capacity, rounding is just noise
_MIN_DISTINCT = 3  # distinct amounts needed before their grid is believed


def unit_step(level: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Per row of levels (fractions, NaN-padded): the coarsest round unit every amount sits on, as a fraction of capacity; NaN if none."""
    raw = level * capacity[:, None]
    ok = ~np.isnan(raw)
    distinct = np.array([len(np.unique(r[m])) for r, m in zip(raw, ok, strict=True)])
    out = np.full(len(raw), np.nan)
    for u in reversed(_UNITS):  # finer first, so coarser ones overwrite
        k = raw / u
        on = (~ok | (np.abs(k - np.rint(k)) < 1e-6)).all(axis=1) & (distinct >= _MIN_DISTINCT)
        out = np.where(on & (u / capacity >= _MIN_UNIT_STEP), u / capacity, out)
    return out


def _group_medians(groups: np.ndarray, values: np.ndarray) -> tuple[dict[str, float], dict[str, int]]:
    """Median and count of `values` per group, from one sort (not a pass over the fleet per group)."""
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    ids, start, n = np.unique(g, return_index=True, return_counts=True)
    med = (v[start + (n - 1) // 2] + v[start + n // 2]) / 2
    return dict(zip(ids.tolist(), med.tolist(), strict=True)), dict(zip(ids.tolist(), n.tolist(), strict=True))


class Forecaster:
    """Refreshes the stored forecast of every slot that received readings, a batch per tick."""

    def __init__(self, store: GatewayStore, batch_size: int = 5000, prior_every: timedelta = timedelta(days=1)) -> None:
        self.store = store
        self.batch_size = batch_size
        self.prior_every = prior_every
        self.priors: dict[tuple[str, str], Prior] = {}
        # Groups whose prior is learnt in the slot's own unit: the capacity its rate refers to.
        self.prior_capacity: dict[tuple[str, str], float] = {}
        self.priors_at: datetime | None = None

    def refresh(self, now: datetime, away: AwayProvider | None = None) -> int:
        """Forecast up to one batch of dirty slots; returns how many were refreshed."""
        self.store.settle()  # fold the readings ingest appended into their slots' state first
        if self.priors_at is None or now - self.priors_at >= self.prior_every:
            self.learn_priors(now)
        slots = self.store.dirty_slots(self.batch_size)
        if not slots:
            return 0
        keys, fa = self.compute(slots, now, away)
        rows = self.rows(keys, fa, now)
        for row, slot in zip(rows, slots, strict=True):
            # Which segment (since which refill) the forecast describes: a reader can tell a
            # forecast made before the latest refill from one made after it.
            row.explanation["segment_start"] = slot.segment_start.isoformat() if slot.segment_start else None
        self.store.write_forecasts(rows, keys)
        return len(keys)

    def learn_priors(self, now: datetime) -> dict[tuple[str, str], Prior]:
        """Relearn the (model, slot) priors from the stored forecasts that rest on their own data (others keep theirs)."""
        models = {d.device_id: d.model for d in self.store.devices() if d.model}
        ids = list(models)
        rates: list[float] = []
        caps: list[float] = []
        groups: list[str] = []
        keys: dict[str, tuple[str, str]] = {}
        for lo in range(0, len(ids), _ID_CHUNK):
            chunk = ids[lo : lo + _ID_CHUNK]
            capacity = {(s.device_id, s.slot_id): s.capacity for s in self.store.slots(chunk)}
            for (device_id, slot_id), f in self.store.forecasts(chunk).items():
                e = f.explanation or {}
                weight = e.get("prior_weight")
                if f.rate_per_day is None or e.get("method") not in MEASURED_METHODS or (weight or 0.0) > _TEACH_PRIOR_WEIGHT:
                    continue
                key = (models[device_id], slot_id)
                group = f"{key[0]}\x1f{key[1]}"
                keys[group] = key
                rates.append(f.rate_per_day)
                caps.append(capacity.get((device_id, slot_id)) or math.nan)
                groups.append(group)
        # A group with too few data-rich slots this time keeps the prior it had: its slots may lean
        # on that prior so much that they stop teaching it (milk bought every few days).
        self.priors_at = now
        r, c = np.array(rates), np.array(caps)
        g_all = np.array(groups)
        use = r > 0  # households' rates spread log-normally: learn the median and spread of log-rates
        if not use.any():
            return self.priors
        gids, med, sd = population_prior(np.log(r[use]), g_all[use])
        # The same in the slot's own unit (grams, ml a day): a household uses its beans, whatever
        # the size of the bag it bought. Whichever of the two spreads less across the fleet is
        # the better prior for a newcomer (equal capacities: the same).
        has_cap = use & (c > 0)
        gids_u, med_u, sd_u = population_prior(np.log(r[has_cap] * c[has_cap]), g_all[has_cap])
        by_unit = dict(zip(gids_u.tolist(), zip(med_u.tolist(), sd_u.tolist(), strict=True), strict=True))
        counts = dict(zip(*np.unique(g_all[use], return_counts=True), strict=True))
        ref, with_cap = _group_medians(g_all[has_cap], c[has_cap])
        for g, m, s in zip(gids.tolist(), med.tolist(), sd.tolist(), strict=True):
            if counts[g] < _MIN_FLEET:
                continue
            self.prior_capacity.pop(keys[g], None)
            if g in by_unit and by_unit[g][1] < s - 1e-9 and with_cap[g] == counts[g]:
                # Kept as the fraction per day of the group's median capacity, rescaled per slot.
                m, s = by_unit[g][0] - math.log(ref[g]), by_unit[g][1]
                self.prior_capacity[keys[g]] = ref[g]
            # The core reads a prior as log-normal with median `rate` and log-sd sqrt(log(1 + (sd/rate)^2)).
            s = max(s, _PRIOR_MIN_LOG_SD)
            self.priors[keys[g]] = (math.exp(m), math.exp(m) * math.sqrt(math.expm1(s * s)))
        return self.priors

    def compute(
        self, slots: Sequence[GwSlot], now: datetime, away: AwayProvider | None = None, quantiles: Sequence[float] = ()
    ) -> tuple[list[tuple[str, str]], ForecastArrays]:
        """Forecast the given slots from their stored readings since the last refill; nothing is written."""
        keys, inputs = self.inputs(slots, now, away)
        return keys, forecast_batch(**inputs, quantiles=quantiles)

    def inputs(
        self, slots: Sequence[GwSlot], now: datetime, away: AwayProvider | None = None
    ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """The keys of the given slots and the core's arguments for them (`forecast_batch(**inputs)`)."""
        keys = [(s.device_id, s.slot_id) for s in slots]
        series = self.store.readings_since((s.device_id, s.slot_id, s.segment_start) for s in slots)
        picked = []
        for k in keys:  # per slot only the selection of readings; the maths runs once on the batch
            points = series.get(k, [])
            t = np.fromiter((p[0].timestamp() for p in points), np.float64, len(points))
            y = np.fromiter((p[1] for p in points), np.float64, len(points))
            idx = thin_readings(t, y)
            picked.append((t[idx], y[idx]))
        width = max((len(p[0]) for p in picked), default=1) or 1
        t_a = np.full((len(keys), width), np.nan)
        y_a = np.full((len(keys), width), np.nan)
        for i, (t, y) in enumerate(picked):
            t_a[i, : len(t)], y_a[i, : len(y)] = t, y
        capacity = np.array([s.capacity if s.capacity > 0 else np.nan for s in slots])
        mu, sd = self._slot_priors(keys, capacity)
        # A counted consumable (tablets, doses) moves in steps of one unit, and scales and meters
        # often report in round units (10 g, 10 ml): tell the core, which only detects steps of
        # 5 % and coarser.
        counted = np.array([s.unit == "count" for s in slots], dtype=bool)
        step = np.where(counted, 1 / capacity, np.nan)
        measured = np.array([s.unit in ("g", "ml") for s in slots])
        step = np.where(np.isnan(step) & measured, unit_step(y_a, capacity), step)
        inputs = {
            "t": t_a, "level": y_a, "now": now.timestamp(), "step": step, "away": self._away(keys, away),
            "prior_rate": mu, "prior_rate_sd": sd, "counted": counted,
        }  # fmt: skip
        return keys, inputs

    def rows(self, keys: Sequence[tuple[str, str]], fa: ForecastArrays, now: datetime) -> list[GwForecast]:
        """The forecasts as rows to store, each with the core's explanation."""
        rows = []
        for i, (device_id, slot_id) in enumerate(keys):
            p10, p50, p90 = (float(a[i]) for a in (fa.tte_p10_days, fa.tte_p50_days, fa.tte_p90_days))
            known = not math.isnan(p50)
            rows.append(
                GwForecast(
                    device_id=device_id,
                    slot_id=slot_id,
                    computed_at=now,
                    level_now=float(fa.level_now[i]) if known else None,
                    rate_per_day=float(fa.rate_per_day[i]) if known else None,
                    empty_p10=_when(now, p10) if known else None,
                    empty_p50=_when(now, p50) if known else None,
                    empty_p90=_when(now, p90) if known else None,
                    confidence=float(fa.confidence[i]),
                    n_used=int(fa.n_used[i]),
                    explanation=explain(fa, i),
                )
            )
        return rows

    def _slot_priors(self, keys: Sequence[tuple[str, str]], capacity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        mu = np.full(len(keys), np.nan)
        sd = np.full(len(keys), np.nan)
        if not self.priors:
            return mu, sd
        models = {d.device_id: d.model for d in self.store.devices({k[0] for k in keys})}
        for i, (device_id, slot_id) in enumerate(keys):
            group = (models.get(device_id) or "", slot_id)
            prior = self.priors.get(group)
            if prior is not None:
                mu[i], sd[i] = prior
                ref = self.prior_capacity.get(group)
                if ref is not None and capacity is not None and capacity[i] > 0:
                    mu[i], sd[i] = mu[i] * ref / capacity[i], sd[i] * ref / capacity[i]
        return mu, sd

    @staticmethod
    def _away(keys: Sequence[tuple[str, str]], away: AwayProvider | None) -> list[list[tuple[float, float]]] | None:
        if away is None:
            return None
        periods = away(sorted({k[0] for k in keys}))
        out = [[(s.timestamp(), e.timestamp()) for s, e in periods.get(device_id, ()) if e > s] for device_id, _ in keys]
        return out if any(out) else None


def away_from(calendar: Mapping[str, Iterable[tuple[datetime, datetime]]]) -> AwayProvider:
    """An away provider over a fixed calendar (device id -> periods); for tests and benchmarks."""

    def provider(device_ids: Sequence[str]) -> dict[str, list[tuple[datetime, datetime]]]:
        return {d: list(calendar.get(d, ())) for d in device_ids}

    return provider
