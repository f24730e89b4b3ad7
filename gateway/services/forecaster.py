"""The forecaster's I/O half: loads dirty slots and their readings, runs the pure core on them, stores the results.

It also keeps the fleet's cold-start priors (per device model and slot, learnt from the stored
forecasts that rest on their own data, in memory, relearnt once per simulated day) and asks an
`AwayProvider` for the households' away periods. The maths is in `gateway.forecasting`;
docs/forecasting.md describes both halves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..forecasting import ForecastArrays, Group, Prior, SlotInput, core_inputs, explain, forecast_batch, learn_priors, teaches
from ..storage import DeviceRegistry, ForecastStore, GwForecast, GwSlot

__all__ = ["AwayProvider", "Forecaster", "away_from"]

# Given the device ids being refreshed, each one's away periods (start, end): no use meanwhile (SPEC 4).
AwayProvider = Callable[[Sequence[str]], Mapping[str, Sequence[tuple[datetime, datetime]]]]

_ID_CHUNK = 5000  # ids per IN (...) query: SQLite allows 32,766 bound variables
_HORIZON_DAYS = 3650  # past this, a run-out is not planned for


def _when(now: datetime, days: float) -> datetime | None:
    if not math.isfinite(days) or days > _HORIZON_DAYS:
        return None  # not depleting, or beyond any planning horizon
    return now + timedelta(days=max(days, 0.0))


class Forecaster:
    """Refreshes the stored forecast of every slot that received readings, a batch per tick."""

    def __init__(self, registry: DeviceRegistry, forecasts: ForecastStore, batch_size: int = 5000, prior_every: timedelta = timedelta(days=1)) -> None:
        self.registry = registry
        self.forecasts = forecasts
        self.batch_size = batch_size
        self.prior_every = prior_every
        self.priors: dict[Group, Prior] = {}
        self.priors_at: datetime | None = None

    def refresh(self, now: datetime, away: AwayProvider | None = None) -> int:
        """Forecast up to one batch of dirty slots; returns how many were refreshed.

        The readings ingest appended must be settled into slot state first (`Settler.settle`,
        the step of the tick before this one): dirty flags and segments come from there.
        """
        if self.priors_at is None or now - self.priors_at >= self.prior_every:
            self.learn_priors(now)
        slots = self.forecasts.dirty_slots(self.batch_size)
        if not slots:
            return 0
        keys, fa = self.compute(slots, now, away)
        rows = self.rows(keys, fa, now)
        for row, slot in zip(rows, slots, strict=True):
            # Which segment (since which refill) the forecast describes: a reader can tell a
            # forecast made before the latest refill from one made after it (ForecastView.describes).
            row.explanation["segment_start"] = slot.segment_start.isoformat() if slot.segment_start else None
        self.forecasts.write(rows, keys)
        return len(keys)

    def learn_priors(self, now: datetime) -> dict[Group, Prior]:
        """Relearn the (model, slot) priors from the stored forecasts that rest on their own data (others keep theirs)."""
        models = self.registry.models()
        ids = list(models)
        groups: list[Group] = []
        rates: list[float] = []
        caps: list[float] = []
        for lo in range(0, len(ids), _ID_CHUNK):
            chunk = ids[lo : lo + _ID_CHUNK]
            capacity = {(s.device_id, s.slot_id): s.capacity for s in self.registry.slots(chunk)}
            for (device_id, slot_id), f in self.forecasts.rows(chunk).items():
                e = f.explanation or {}
                if not teaches(e.get("method"), f.rate_per_day, e.get("prior_weight")):
                    continue
                groups.append((models[device_id], slot_id))
                rates.append(f.rate_per_day)  # type: ignore[arg-type]
                caps.append(capacity.get((device_id, slot_id)) or math.nan)
        self.priors_at = now
        self.priors = learn_priors(groups, rates, caps, self.priors)
        return self.priors

    def compute(
        self, slots: Sequence[GwSlot], now: datetime, away: AwayProvider | None = None, quantiles: Sequence[float] = ()
    ) -> tuple[list[tuple[str, str]], ForecastArrays]:
        """Forecast the given slots from their stored readings since the last refill; nothing is written."""
        keys, inputs = self.inputs(slots, now, away)
        return keys, forecast_batch(**inputs, quantiles=quantiles)

    def inputs(self, slots: Sequence[GwSlot], now: datetime, away: AwayProvider | None = None) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """The keys of the given slots and the core's arguments for them (`forecast_batch(**inputs)`)."""
        models = self.registry.models({s.device_id for s in slots}) if self.priors else {}
        specs = [SlotInput(s.device_id, s.slot_id, s.unit, s.capacity, models.get(s.device_id, "")) for s in slots]
        series = self.forecasts.readings_since((s.device_id, s.slot_id, s.segment_start) for s in slots)
        periods = away(sorted({s.device_id for s in slots})) if away is not None else None
        return [s.key for s in specs], core_inputs(specs, series, now, self.priors, periods)

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


def away_from(calendar: Mapping[str, Iterable[tuple[datetime, datetime]]]) -> AwayProvider:
    """An away provider over a fixed calendar (device id -> periods); for tests and benchmarks."""

    def provider(device_ids: Sequence[str]) -> dict[str, list[tuple[datetime, datetime]]]:
        return {d: list(calendar.get(d, ())) for d in device_ids}

    return provider
