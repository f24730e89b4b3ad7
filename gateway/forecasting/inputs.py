"""The core's inputs from stored readings: thinned, padded into arrays, with steps, priors and away periods; pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from .priors import Prior, slot_priors

__all__ = ["SlotInput", "core_inputs", "thin_readings", "unit_step"]

Key = tuple[str, str]  # (device id, slot id)
Away = Mapping[str, Sequence[tuple[datetime, datetime]]]  # device id -> (start, end) periods with no use (SPEC 4)

_MAX_READINGS = 240  # readings per slot fed to the core: past this, more add little but cost time


@dataclass(frozen=True, slots=True)
class SlotInput:
    """What the core needs to know of a slot besides its readings."""

    device_id: str
    slot_id: str
    unit: str
    capacity: float
    model: str = ""  # the device's model: whose fleet prior applies ("" when unknown)

    @property
    def key(self) -> Key:
        """(device id, slot id)."""
        return (self.device_id, self.slot_id)


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


def _padded(points: Sequence[Sequence[tuple[datetime, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """(S, N) NaN-padded times (epoch seconds) and levels, each row thinned to what the core uses."""
    picked = []
    for p in points:  # per slot only the selection of readings; the maths runs once on the batch
        t = np.fromiter((x[0].timestamp() for x in p), np.float64, len(p))
        y = np.fromiter((x[1] for x in p), np.float64, len(p))
        idx = thin_readings(t, y)
        picked.append((t[idx], y[idx]))
    width = max((len(p[0]) for p in picked), default=1) or 1
    t_a = np.full((len(points), width), np.nan)
    y_a = np.full((len(points), width), np.nan)
    for i, (t, y) in enumerate(picked):
        t_a[i, : len(t)], y_a[i, : len(y)] = t, y
    return t_a, y_a


def _away(keys: Sequence[Key], away: Away | None) -> list[list[tuple[float, float]]] | None:
    if away is None:
        return None
    out = [[(s.timestamp(), e.timestamp()) for s, e in away.get(device_id, ()) if e > s] for device_id, _ in keys]
    return out if any(out) else None


def core_inputs(
    slots: Sequence[SlotInput],
    series: Mapping[Key, Sequence[tuple[datetime, float]]],
    now: datetime,
    priors: Mapping[tuple[str, str], Prior],
    away: Away | None = None,
) -> dict[str, Any]:
    """The core's arguments for these slots (`forecast_batch(**inputs)`), from each one's readings since its last refill."""
    keys = [s.key for s in slots]
    t_a, y_a = _padded([series.get(k, ()) for k in keys])
    capacity = np.array([s.capacity if s.capacity > 0 else np.nan for s in slots])
    mu, sd = slot_priors([(s.model, s.slot_id) for s in slots], capacity, priors)
    # A counted consumable (tablets, doses) moves in steps of one unit, and scales and meters
    # often report in round units (10 g, 10 ml): tell the core, which only detects steps of
    # 5 % and coarser.
    counted = np.array([s.unit == "count" for s in slots], dtype=bool)
    step = np.where(counted, 1 / capacity, np.nan)
    measured = np.array([s.unit in ("g", "ml") for s in slots])
    step = np.where(np.isnan(step) & measured, unit_step(y_a, capacity), step)
    return {
        "t": t_a, "level": y_a, "now": now.timestamp(), "step": step, "away": _away(keys, away),
        "prior_rate": mu, "prior_rate_sd": sd, "counted": counted,
    }  # fmt: skip
