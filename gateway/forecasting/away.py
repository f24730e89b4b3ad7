"""Away periods (no household use) on a slot's clock: normalising them and moving times past them."""

from __future__ import annotations

import numpy as np

__all__ = ["away_before", "normalise_away", "push_past_away"]


def normalise_away(away: np.ndarray) -> np.ndarray:
    """(S, K, 2) away periods sorted by start and made disjoint; NaN padding becomes empty periods."""
    a = np.where(np.isnan(away), 0.0, away)
    a = np.take_along_axis(a, np.argsort(a[:, :, 0], axis=1)[:, :, None], axis=1)
    prev_end = np.maximum.accumulate(a[:, :, 1], axis=1)
    start = a[:, :, 0].copy()
    start[:, 1:] = np.maximum(start[:, 1:], prev_end[:, :-1])
    return np.stack([start, np.maximum(a[:, :, 1], start)], axis=2)


def away_before(t: np.ndarray, away: np.ndarray) -> np.ndarray:
    """Away time before each t (same unit as away); t is (S, N) or (S,)."""
    ex = (slice(None),) + (None,) * (t.ndim - 1)
    total = np.zeros_like(t)
    for k in range(away.shape[1]):  # a handful of periods per slot
        s, e = away[:, k, 0][ex], away[:, k, 1][ex]
        total += np.clip(t - s, 0.0, e - s)
    return total


def push_past_away(t_end: np.ndarray, now: np.ndarray, away: np.ndarray) -> np.ndarray:
    """Wall-clock time at which t_end (counted in active time from now) falls once away periods pause use."""
    for k in range(away.shape[1]):  # sorted and disjoint, so one forward sweep suffices
        s = np.maximum(away[:, k, 0], now)
        e = away[:, k, 1]
        t_end = np.where((e > s) & (s < t_end), t_end + (e - s), t_end)
    return t_end
