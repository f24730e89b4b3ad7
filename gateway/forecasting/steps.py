"""Quantisation steps: which grid (25 %, 20 %, 10 %, 5 %, 1 %) a row of levels sits on."""

from __future__ import annotations

import numpy as np

from .arrays import row_sum

__all__ = ["detect_step"]

# Steps we detect, coarsest first: 4 bars, 5 bars, 10 %, 5 % and whole percent. A slow level in
# whole percent repeats one value for days: its rounding error is not independent noise but a
# band, as much as a 10 % step is (a toner at 0.1 %/day shows "1 %" for ten days).
_STEPS = (0.25, 0.2, 0.1, 0.05, 0.01)
_STEP_TOL = 1e-6  # on a step if this close to a multiple of it (float32 round trips stay within)
_MIN_DETECT = 3  # readings needed before a row's levels can be called quantised


def detect_step(lv: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """The coarsest step in _STEPS that every valid level sits on, else 0 (a flat row gets the coarsest: the cautious guess)."""
    fine = _STEPS[-1]
    head = lv[:, :_MIN_DETECT] / fine
    near = np.abs(head - np.rint(head)) < _STEP_TOL / fine
    ok = n_valid >= _MIN_DETECT
    for c in range(head.shape[1]):  # a column at a time: .all(axis=1) over three columns is slower
        ok &= near[:, c]
    rows = np.flatnonzero(ok)
    step = np.zeros(len(lv))
    if rows.size:  # the full check only for rows whose first readings sit on the finest grid
        five = _STEPS[-2]
        k = lv[rows] / five
        ki = np.rint(k)
        k -= ki
        np.abs(k, out=k)
        on = row_sum(k >= _STEP_TOL / five) == 0  # NaN padding compares False
        # Which multiples of 5 % occur, as bits (NaN casts out of range and is clipped to bit 0:
        # level 0 sits on every step).
        with np.errstate(invalid="ignore"):
            seen = np.bitwise_or.reduce(np.left_shift(1, np.clip(ki.astype(np.int32), 0, 30)), axis=1)
        found = np.where(on, five, 0.0)
        for cand in reversed(_STEPS[:-2]):  # finer first, so coarser ones overwrite
            grid = sum(1 << b for b in range(0, 31, round(cand / five)))
            found = np.where(on & (seen & ~grid == 0), cand, found)
        # Off the 5 % grid: whole percent? It is a band only if the level stays in it: a row that
        # repeats its value at fewer than half of its readings moves faster than its resolution,
        # and its rounding is independent noise.
        rest = np.flatnonzero(~on)
        if rest.size:
            k = lv[rows[rest]] / fine
            ki = np.rint(k)
            k -= ki
            np.abs(k, out=k)
            pct = row_sum(k >= _STEP_TOL / fine) == 0
            repeats = row_sum(ki[:, 1:] == ki[:, :-1])  # NaN never equals
            found[rest] = np.where(pct & (2 * repeats >= n_valid[rows[rest]] - 1), fine, 0.0)
        step[rows] = found
    return step
