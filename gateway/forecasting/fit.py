"""The maths of the forecasting core for one chunk of slots: closed-form sums over (S, N) arrays."""

from __future__ import annotations

from functools import cache

import numpy as np

from ..readings import refill_jump
from .methods import CODES, ForecastMethod

__all__ = ["DAY", "fit_chunk", "normalise_away"]

DAY = 86_400.0
_NONE, _PRIOR, _LEVEL, _STEPDOWN, _BOUND = (CODES.index(m) for m in ForecastMethod)

_Z90 = 1.2815515655446004  # one-sided 90 % normal quantile: P10 and P90
# Steps we detect, coarsest first: 4 bars, 5 bars, 10 %, 5 % and whole percent. A slow level in
# whole percent repeats one value for days: its rounding error is not independent noise but a
# band, as much as a 10 % step is (a toner at 0.1 %/day shows "1 %" for ten days).
_STEPS = (0.25, 0.2, 0.1, 0.05, 0.01)
_STEP_TOL = 1e-6  # on a step if this close to a multiple of it (float32 round trips stay within)
_MIN_DETECT = 3  # readings needed before a row's levels can be called quantised
_MIN_POINTS = 3  # a line with an error estimate needs three points
# Diffusion per unit rate, E[X^2]/E[X] of a compound Poisson use: events of ~1 % of capacity with
# exponential sizes. Used when the data cannot measure it, and as a prior worth _PRIOR_DOF increments.
_EVENT_SIZE = 0.02
_PRIOR_DOF = 3.0
# A rise of this many steps between two readings (short of a refill) is noise, not edge flicker.
_NOISY_RISE, _NOISY_RISES = 1.5, 2
_STEP_BURSTS = 2.0  # bursts about one quantisation step in size, exponential: E[X^2]/E[X] = 2 x step
_MAX_CV = 3.0  # beyond this relative sd a log-normal rate is meaningless: keep it normal
_RATE_SD_FLOOR = 1e-6  # per day: keeps a noiseless line from having infinite precision


def normalise_away(away: np.ndarray) -> np.ndarray:
    """(S, K, 2) away periods sorted by start and made disjoint; NaN padding becomes empty periods."""
    a = np.where(np.isnan(away), 0.0, away)
    a = np.take_along_axis(a, np.argsort(a[:, :, 0], axis=1)[:, :, None], axis=1)
    prev_end = np.maximum.accumulate(a[:, :, 1], axis=1)
    start = a[:, :, 0].copy()
    start[:, 1:] = np.maximum(start[:, 1:], prev_end[:, :-1])
    return np.stack([start, np.maximum(a[:, :, 1], start)], axis=2)


def _away_before(t: np.ndarray, away: np.ndarray) -> np.ndarray:
    """Away time before each t (same unit as away); t is (S, N) or (S,)."""
    ex = (slice(None),) + (None,) * (t.ndim - 1)
    total = np.zeros_like(t)
    for k in range(away.shape[1]):  # a handful of periods per slot
        s, e = away[:, k, 0][ex], away[:, k, 1][ex]
        total += np.clip(t - s, 0.0, e - s)
    return total


def _push_past_away(t_end: np.ndarray, now: np.ndarray, away: np.ndarray) -> np.ndarray:
    """Wall-clock time at which t_end (counted in active time from now) falls once away periods pause use."""
    for k in range(away.shape[1]):  # sorted and disjoint, so one forward sweep suffices
        s = np.maximum(away[:, k, 0], now)
        e = away[:, k, 1]
        t_end = np.where((e > s) & (s < t_end), t_end + (e - s), t_end)
    return t_end


def _detect_step(lv: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
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
        on = _row_sum(k >= _STEP_TOL / five) == 0  # NaN padding compares False
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
            pct = _row_sum(k >= _STEP_TOL / fine) == 0
            repeats = _row_sum(ki[:, 1:] == ki[:, :-1])  # NaN never equals
            found[rest] = np.where(pct & (2 * repeats >= n_valid[rows[rest]] - 1), fine, 0.0)
        step[rows] = found
    return step


def _row_sum(a: np.ndarray) -> np.ndarray:
    """Sums along rows as a float32 matrix-vector product: BLAS beats numpy's reductions on short rows."""
    return a.astype(np.float32, copy=False) @ np.ones(a.shape[1], np.float32)


def _flat(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Flat positions of a[i, idx[i]] per row of a C-contiguous (S, N) a; idx lies in -1..N-1 (-1 reads column 0)."""
    ncol = a.shape[1]
    return np.arange(0, len(a) * ncol, ncol) + np.maximum(idx, 0)


def _at(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """a at flat positions pos (from _flat), as float64."""
    return np.take(a.ravel(), pos).astype(np.float64)


@cache
def _triangle(ncol: int) -> np.ndarray:
    """(N, N-1) matrix whose product with a row gives its sums before each of points 1..N-1."""
    return (np.arange(ncol)[:, None] < np.arange(1, ncol)[None, :]).astype(np.float32)


@cache
def _prefix(ncol: int) -> tuple[np.ndarray, np.ndarray]:
    """Row k: True (and 1.0) in the first k of N columns; indexing it with counts builds masks without broadcasting."""
    b = np.arange(ncol + 1)[:, None] > np.arange(ncol)[None, :]
    return b, b.astype(np.float32)


def _shift_diff(a: np.ndarray, lag: int) -> np.ndarray:
    """(S, N) array of a[:, j + lag] - a[:, j]; the last lag columns are junk (finite where a is) to be masked.

    One pass over the flat array: slicing rows instead costs about three times as much at N = 60.
    """
    out = np.empty(a.shape, a.dtype)  # C order, so that its flat view is itself
    flat = out.ravel()
    np.subtract(a.ravel()[lag:], a.ravel()[:-lag], out=flat[:-lag])
    flat[-lag:] = 0.0
    return out


def _quantile(
    z: float, level: np.ndarray, rate: np.ndarray, var_l: np.ndarray, sig2: np.ndarray, var_r: np.ndarray,
    cv: np.ndarray, skew: np.ndarray, h50: np.ndarray,
) -> np.ndarray:
    """The time h at which use C(h) ~ N(rate h, var_l + sig2 h + v h^2) reaches the level with score z.

    (level - rate h)^2 = z^2 (var_l + sig2 h + v h^2), solved without cancellation. The rate is
    log-normal (few bursts make its upper tail long): v is the normal variance that reproduces
    its bound on the side asked for; on the early side the bursts' diffusion also grows with the
    rate, as a compound Poisson's does. z < 0: an early quantile (the smaller root), z > 0: late.
    """
    if z == 0:
        return h50
    za = abs(z)
    z2 = za * za
    c = level * level - z2 * var_l
    if z < 0:
        v = np.where(skew, np.square(rate * np.expm1(za * cv) / za), var_r)
        b = 2 * level * rate + z2 * sig2 * np.where(skew, np.exp(za * cv), 1.0)
        a = rate * rate - z2 * v
        return np.where(c > 0, 2 * c / (b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))), 0.0)
    v = np.where(skew, np.square(rate * -np.expm1(-za * cv) / za), var_r)
    b = 2 * level * rate + z2 * sig2
    a = rate * rate - z2 * v
    return np.where(a > 0, (b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / (2 * a), np.inf)


def fit_chunk(
    t: np.ndarray,
    y: np.ndarray,
    now: np.ndarray,
    step: np.ndarray,
    away: np.ndarray | None,
    mu0: np.ndarray,
    sd0: np.ndarray,
    zs: tuple[float, ...] = (),
    counted: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Forecast one chunk; returns rate, level, p10, p50, p90, confidence, n, method, rate sd, prior weight, step, extra quantiles.

    zs: normal scores of extra quantiles of the time to empty (negative: earlier than P50); the
    last value returned is their (S, len(zs)) array. counted: (S,) bool, levels that count whole
    units (their band lies below the reading, not around it).
    """
    # Hot (S, N) arrays are float32 and updated in place: allocation, not arithmetic, is the cost.
    s, ncol = t.shape
    col = np.arange(ncol)
    valid = np.isfinite(t) & np.isfinite(y)
    n_valid = _row_sum(valid).astype(np.int64)
    t0 = t[:, 0].copy()  # each row's clock origin: its first reading, or its earliest if that is missing
    invalid = ~valid
    odd = np.flatnonzero(invalid[:, 0] & (n_valid > 0))
    if odd.size:
        t0[odd] = np.min(np.where(valid[odd], t[odd], np.inf), axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        x = np.empty((s, ncol), np.float32)  # active days since t0
        np.subtract(t, t0[:, None], out=x)
        x *= np.float32(1 / DAY)
        now_d = (now - t0) / DAY
        tau_now = now_d
        if away is not None:
            away = (away - t0[:, None, None]) / DAY  # in days since t0, like x
            x -= _away_before(x, away)
            tau_now = now_d - _away_before(now_d, away)
        np.copyto(x, np.inf, where=invalid)
        lv = y.astype(np.float32, order="C")  # C order: differences are taken along the flat array
        np.copyto(lv, np.nan, where=invalid)
        del invalid
        down = np.empty((s, ncol), bool)
        np.less(x.ravel()[1:], x.ravel()[:-1], out=down.ravel()[:-1])
        down[:, -1] = False
        rows = np.unique(np.flatnonzero(down) // ncol)
        del down
        if rows.size:
            order = np.argsort(x[rows], axis=1, kind="stable")
            x[rows] = np.take_along_axis(x[rows], order, axis=1)
            lv[rows] = np.take_along_axis(lv[rows], order, axis=1)
            valid[rows] = np.isfinite(x[rows])
        todo = np.flatnonzero(np.isnan(step))
        step = step.copy()
        if todo.size == s:
            step = _detect_step(lv, n_valid)
        elif todo.size:
            step[todo] = _detect_step(lv[todo], n_valid[todo])
        half = step / 2
        if counted is not None and counted.any():
            # A count of k whole units is k - 1 to k units' worth of steady use (the unit in use
            # counts until it is used up): the band's centre is half a unit below the reading.
            lv -= np.where(counted & (step > 0), half, 0.0)[:, None].astype(np.float32)

        # Segment: readings after the last big upward jump (a refill the caller left in).
        # A quantised row whose level rises by two steps or more between readings (short of a
        # refill), more than once, is noisier than its step: its rounding is part of the noise,
        # and a new low is as likely a dip of the noise as use, so it is fitted as an unquantised
        # level. (One such rise alone may be an unseen top-up.) One pass finds the rows with a
        # rise large enough to be either; only those are looked at again.
        jump = refill_jump(step)  # the one refill rule (gateway.readings), with each row's step
        low = np.where(step > 0, np.minimum(_NOISY_RISE * step, jump), jump)
        dl = _shift_diff(lv, 1)
        dl[:, -1] = -np.inf
        cand = np.unique(np.flatnonzero(dl > low[:, None].astype(np.float32)) // ncol)
        start = np.zeros(s, dtype=np.int64)
        if cand.size:
            dc = dl[cand, :-1]
            rise = dc > jump[cand, None].astype(np.float32)
            jumped = _row_sum(rise) > 0
            start[cand[jumped]] = ncol - 1 - np.argmax(rise[jumped, ::-1], axis=1)
            qc = np.flatnonzero(step[cand] > 0)
            if qc.size:
                up = (dc[qc] > (_NOISY_RISE * step[cand[qc], None]).astype(np.float32)) & (col[1:] > start[cand[qc], None])
                noisy = cand[qc[_row_sum(up) >= _NOISY_RISES]]
                step[noisy] = 0.0
                half[noisy] = 0.0
        del dl
        n_seg = n_valid - start
        last = n_valid - 1
        at_last, at_start = _flat(x, last), _flat(x, start)
        x_last, y_last, y_first = _at(x, at_last), _at(lv, at_last), _at(lv, at_start)
        span = x_last - _at(x, at_start)
        q = step > 0
        floor_last = y_last.copy()

        # Points to fit: every reading, or for quantised slots the first reading at each new low,
        # placed mid-way through the gap in which the level crossed into it. Rows that drop
        # points are compacted so that the fitted points come first.
        # Masks of the first k points are rows of a table (0/1 in float32: multiplying by a bool
        # mask converts it element by element, at twice the cost).
        table, table_f = _prefix(ncol)
        n = n_seg.copy()
        need = np.flatnonzero(q | (start > 0))
        if need.size:
            xs, ys = x[need], lv[need]
            w = valid[need]
            w &= ~table[start[need]]
            qi = np.flatnonzero(q[need])
            if qi.size:
                wq = w[qi]
                yq = ys[qi]
                np.copyto(yq, np.inf, where=~wq)
                # prev[:, j]: the lowest level before reading j, a running minimum a column at a
                # time (minimum.accumulate along short rows is slower).
                prev = np.empty_like(yq)
                prev[:, 0] = np.inf
                prev[:, 1:2] = yq[:, :1]
                for j in range(2, ncol):
                    np.minimum(prev[:, j - 1], yq[:, j - 1], out=prev[:, j])
                floor_last[need[qi]] = np.minimum(prev[:, -1], yq[:, -1])
                wq &= np.isfinite(prev)
                wq &= yq < prev - half[need[qi], None].astype(np.float32)
                w[qi] = wq
                xq = xs[qi]
                mid = np.empty(xq.shape, xq.dtype)  # mid-points of consecutive readings, one flat pass
                np.add(xq.ravel()[1:], xq.ravel()[:-1], out=mid.ravel()[1:])
                mid /= 2
                mid[:, 0] = xq[:, 0]
                xs[qi] = mid
                prev += yq
                prev /= 2
                ys[qi] = prev
            n[need] = _row_sum(w)
            ri, ci = np.nonzero(w)
            pos = np.arange(ri.size) - (np.cumsum(n[need]) - n[need])[ri]
            x[need[ri], pos] = xs[ri, ci]
            lv[need[ri], pos] = ys[ri, ci]
        off = ~table[n]
        X, Y = x, lv
        at_end = _flat(X, n - 1)
        ax, ay = _at(X, at_end), _at(Y, at_end)
        np.copyto(X, 0.0, where=off)
        np.copyto(Y, 0.0, where=off)
        del off
        mf = table_f[n]

        # Least-squares line, then the variogram of its residuals: e^2 ~ 2 eta^2 + sigma^2 gap.
        nn = np.maximum(n, 1)
        mx, my = _row_sum(X) / nn, _row_sum(Y) / nn
        dx = np.subtract(X, mx[:, None].astype(np.float32))
        dx *= mf
        dy = np.subtract(Y, my[:, None].astype(np.float32))
        dy *= mf
        sxx = np.einsum("ij,ij->i", dx, dx).astype(np.float64)
        slope = np.einsum("ij,ij->i", dx, dy) / sxx
        res = dy
        res -= slope[:, None].astype(np.float32) * dx
        sums = np.zeros((5, s))  # pairs, sum gap, sum gap^2, sum e^2, sum gap e^2
        gaps = []
        for lag in (1, 2):
            # Full-width differences (one flat pass each); the mask of pairs inside the row's
            # points also clears the junk columns, and the sums read the first N - lag columns.
            ml = table_f[np.maximum(n - lag, 0)]
            gap = _shift_diff(X, lag)
            gap *= ml
            e2 = _shift_diff(res, lag)
            e2 *= e2
            e2 *= ml
            gap, e2 = gap[:, :-lag], e2[:, :-lag]
            sums += (np.maximum(n - lag, 0), _row_sum(gap), np.einsum("ij,ij->i", gap, gap),
                     _row_sum(e2), np.einsum("ij,ij->i", gap, e2))  # fmt: skip
            gaps.append(gap)
        c0, c1, c2, e0, e1 = sums
        beta = (c0 * e1 - c1 * e0) / (c0 * c2 - c1 * c1)
        alpha = (e0 - beta * c1) / c0
        beta = np.where(alpha < 0, e1 / c2, beta)
        alpha = np.where(alpha < 0, 0.0, alpha)
        alpha = np.where(beta < 0, e0 / c0, alpha)
        beta = np.where(beta < 0, 0.0, beta)
        eta2 = np.nan_to_num(alpha / 2)
        rate_d = -slope
        incr = np.maximum(n - 1, 0)
        # The burstiness prior grows with the rate. A day of flat readings puts the slot's own rate
        # near zero, which says nothing about the bursts to come: where the fleet's median rate is
        # known and larger, the prior's bursts are those of the fleet's median household.
        r_ref = np.fmax(np.maximum(rate_d, 0), mu0)
        sig2 = (incr * np.nan_to_num(beta) + _PRIOR_DOF * _EVENT_SIZE * r_ref) / (incr + _PRIOR_DOF)
        # Var of an OLS slope when the level is a random walk plus noise: the walk's part is
        # sigma^2 sum(gap_j * P_j^2) / sxx^2, P_j the sum of centred times before point j
        # (a product with a triangle of ones: a cumulative sum along rows is slower).
        pre = dx @ _triangle(ncol)
        pre *= pre
        walk = np.einsum("ij,ij->i", gaps[0], pre)
        var_d = eta2 / sxx + sig2 * walk / (sxx * sxx)

        reg = (n >= _MIN_POINTS) & (sxx > 0) & np.isfinite(var_d)
        bound = q & ~reg & (span > 0)
        # Steps descended since the first reading (a drop between two readings may span several).
        k = np.where(q, np.maximum(np.rint((y_first - floor_last) / np.where(q, step, 1.0)), 0), 0)
        rate_d = np.where(reg, rate_d, np.where(bound, np.maximum(k, 0.5) * step / span, np.nan))
        var_d = np.where(reg, var_d, np.square(np.minimum(k + 1, 2) * step / span) / 12)
        pd = np.where(reg | bound, 1 / np.maximum(var_d, _RATE_SD_FLOOR**2), 0.0)
        pp = np.where(np.isfinite(mu0) & np.isfinite(sd0), 1 / np.maximum(sd0, _RATE_SD_FLOOR) ** 2, 0.0)
        prec = pd + pp
        rate = (pd * np.nan_to_num(rate_d) + pp * np.nan_to_num(mu0)) / prec  # NaN when no evidence
        var_r = 1 / prec
        prior_w = pp / prec
        # Households' rates spread log-normally (a heavy user uses several times the median), so
        # a prior is combined in log space where it can: there a household at 5x the median is
        # a couple of sd away, not ten, and its own readings win quickly. The data's log-rate
        # has variance var_d / r^2 (delta method); rows whose data show no use keep the linear form.
        lp = (pp > 0) & (mu0 > 0)
        if lp.any():
            ld = lp & (pd > 0) & (rate_d > 0)
            s02 = np.log1p(np.square(sd0 / mu0))  # the log-normal prior with median mu0 and sd sd0
            p0 = np.where(lp, 1 / np.maximum(s02, 1e-12), 0.0)
            pdl = np.where(ld, np.square(rate_d) / np.maximum(var_d, _RATE_SD_FLOOR**2), 0.0)
            precl = p0 + pdl
            m = (p0 * np.log(np.where(lp, mu0, 1.0)) + pdl * np.log(np.where(ld, rate_d, 1.0))) / precl
            use = lp & (ld | (pd == 0))
            rate = np.where(use, np.exp(m), rate)
            var_r = np.where(use, np.square(rate) / precl, var_r)  # so that sd(r)/r is the log-sd
            prior_w = np.where(use, p0 / precl, prior_w)
        rate = np.maximum(rate, 0.0)
        sig2 = np.where(reg, sig2, _EVENT_SIZE * rate)
        # A quantised level cannot show bursts smaller than its step: the use behind it may come
        # in bursts that large, so its diffusion is at least that of bursts of one step.
        sig2 = np.maximum(sig2, _STEP_BURSTS * step * rate)
        eta2 = np.where(reg, eta2, step * step / 12)

        # Level now: from the last fitted point (or reading), kept inside the last reading's band.
        lvl = np.where(reg, ay - rate * (x_last - ax), y_last)
        lvl = np.where(q, np.clip(lvl, floor_last - half, floor_last + half), lvl)
        g = np.maximum(tau_now - x_last, 0.0)
        level = np.clip(lvl - rate * g, 0.0, 1.0)
        var_l = eta2 + sig2 * g + var_r * g * g

        # Time h at which use C(h) ~ N(rate h, var_l + sig2 h + v h^2) reaches the level:
        # (level - rate h)^2 = z^2 (var_l + sig2 h + v h^2), solved without cancellation. The
        # rate is log-normal (few bursts make its upper tail long): v is the normal variance
        # that reproduces its upper bound for P10 and its lower bound for P90; in the fast
        # scenario of P10 the bursts' diffusion grows with the rate, as a compound Poisson's does.
        cv = np.sqrt(var_r) / rate
        skew = (rate > 0) & (cv < _MAX_CV)
        h50 = np.where(rate > 0, level / rate, np.where(level > 0, np.inf, 0.0))
        hs = [_quantile(z, level, rate, var_l, sig2, var_r, cv, skew, h50) for z in (-_Z90, _Z90, *zs)]
        tte = []
        for h in (hs[0], h50, hs[1], *hs[2:]):
            if away is not None:
                h = _push_past_away(now_d + h, now_d, away) - now_d
            tte.append(np.where(np.isnan(level) | np.isnan(rate), np.nan, h))
        p10, p50, p90 = tte[:3]
        extra = np.stack(tte[3:], axis=1) if zs else np.empty((s, 0))
        sharp = np.where(np.isfinite(p50) & (p50 > 0), p10 / p50, (p10 == p50).astype(float))
        conf = np.clip(np.nan_to_num(sharp * (1 - prior_w)), 0.0, 1.0)

    method = np.where(reg, np.where(q, _STEPDOWN, _LEVEL), np.where(bound, _BOUND, np.where(pp > 0, _PRIOR, _NONE)))
    n_used = np.where(reg, n, n_seg)
    return rate, level, p10, p50, p90, conf, n_used, method, np.sqrt(var_r), prior_w, step, extra
