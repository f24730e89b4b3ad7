"""The maths of the forecasting core for one chunk of slots: closed-form sums over (S, N) arrays, stage by stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..readings import refill_jump
from .arrays import flat_pos, prefix_masks, row_sum, shift_diff, take_at, triangle
from .away import away_before
from .methods import CODES, ForecastMethod
from .steps import detect_step
from .tte import time_to_empty

__all__ = ["DAY", "ChunkFit", "fit_chunk"]

DAY = 86_400.0
_NONE, _PRIOR, _LEVEL, _STEPDOWN, _BOUND = (CODES.index(m) for m in ForecastMethod)

_MIN_POINTS = 3  # a line with an error estimate needs three points
# Diffusion per unit rate, E[X^2]/E[X] of a compound Poisson use: events of ~1 % of capacity with
# exponential sizes. Used when the data cannot measure it, and as a prior worth _PRIOR_DOF increments.
_EVENT_SIZE = 0.02
_PRIOR_DOF = 3.0
# A rise of this many steps between two readings (short of a refill) is noise, not edge flicker.
_NOISY_RISE, _NOISY_RISES = 1.5, 2
_STEP_BURSTS = 2.0  # bursts about one quantisation step in size, exponential: E[X^2]/E[X] = 2 x step
_RATE_SD_FLOOR = 1e-6  # per day: keeps a noiseless line from having infinite precision


@dataclass(frozen=True, slots=True)
class ChunkFit:
    """Forecasts for the S slots of one chunk; every field is (S,) except extra."""

    rate: np.ndarray  # fraction of capacity per active day (>= 0; NaN when no evidence)
    level: np.ndarray  # fraction remaining now
    p10: np.ndarray  # days to empty
    p50: np.ndarray
    p90: np.ndarray
    confidence: np.ndarray  # 0..1
    n_used: np.ndarray  # points the line went through, else readings in the segment
    method: np.ndarray  # code of a ForecastMethod (methods.CODES)
    rate_sd: np.ndarray
    prior_weight: np.ndarray  # the prior's share of the rate's precision
    step: np.ndarray  # quantisation step used (0 = unquantised)
    extra: np.ndarray  # (S, len(zs)) days to empty at the extra normal scores


@dataclass(slots=True)
class _Axis:
    """Readings on each row's active-time axis, sorted; x and lv are (S, N) float32 that later stages reuse."""

    x: np.ndarray  # active days since the row's first reading; +inf at padding
    lv: np.ndarray  # levels; NaN at padding
    valid: np.ndarray  # (S, N) bool
    n_valid: np.ndarray  # (S,) int64
    now_d: np.ndarray  # wall-clock days from the first reading to now
    tau_now: np.ndarray  # active days from the first reading to now
    away: np.ndarray | None  # (S, K, 2) away periods in days since the first reading


@dataclass(slots=True)
class _Segment:
    """Each row's readings after its last refill: where they start and their ends."""

    start: np.ndarray  # column of the first reading
    n_seg: np.ndarray  # readings in it
    x_last: np.ndarray
    y_last: np.ndarray
    y_first: np.ndarray
    span: np.ndarray  # active days from its first to its last reading


@dataclass(slots=True)
class _Points:
    """The points each row's line goes through (the first n columns of x and lv, the rest zeroed)."""

    n: np.ndarray
    mask: np.ndarray  # (S, N) float32: 1.0 in the first n columns
    x_end: np.ndarray  # the last point
    y_end: np.ndarray
    floor_last: np.ndarray  # the lowest level in the segment (quantised rows; else the last level)


@dataclass(slots=True)
class _Line:
    """The least-squares line's rate and its noise: measurement noise eta2, diffusion sig2 per day."""

    rate_d: np.ndarray
    var_d: np.ndarray
    eta2: np.ndarray
    sig2: np.ndarray
    reg: np.ndarray  # where the line stands: enough points, spread in time, a finite variance


def _prepare(t: np.ndarray, y: np.ndarray, now: np.ndarray, away: np.ndarray | None) -> _Axis:
    """Each row's readings in active days since its first reading (away time taken out), sorted by time."""
    s, ncol = t.shape
    valid = np.isfinite(t) & np.isfinite(y)
    n_valid = row_sum(valid).astype(np.int64)
    t0 = t[:, 0].copy()  # each row's clock origin: its first reading, or its earliest if that is missing
    invalid = ~valid
    odd = np.flatnonzero(invalid[:, 0] & (n_valid > 0))
    if odd.size:
        t0[odd] = np.min(np.where(valid[odd], t[odd], np.inf), axis=1)
    x = np.empty((s, ncol), np.float32)  # active days since t0
    np.subtract(t, t0[:, None], out=x)
    x *= np.float32(1 / DAY)
    now_d = (now - t0) / DAY
    tau_now = now_d
    if away is not None:
        away = (away - t0[:, None, None]) / DAY  # in days since t0, like x
        x -= away_before(x, away)
        tau_now = now_d - away_before(now_d, away)
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
    return _Axis(x, lv, valid, n_valid, now_d, tau_now, away)


def _steps(
    lv: np.ndarray, n_valid: np.ndarray, step: np.ndarray, counted: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's step (detected where NaN) and half-step; counted rows' levels are moved down in lv, in place."""
    todo = np.flatnonzero(np.isnan(step))
    step = step.copy()
    if todo.size == len(step):
        step = detect_step(lv, n_valid)
    elif todo.size:
        step[todo] = detect_step(lv[todo], n_valid[todo])
    half = step / 2
    if counted is not None and counted.any():
        # A count of k whole units is k - 1 to k units' worth of steady use (the unit in use
        # counts until it is used up): the band's centre is half a unit below the reading.
        lv -= np.where(counted & (step > 0), half, 0.0)[:, None].astype(np.float32)
    return step, half


def _segment(x: np.ndarray, lv: np.ndarray, n_valid: np.ndarray, step: np.ndarray, half: np.ndarray) -> _Segment:
    """Each row's segment after its last refill; rows noisier than their step get step 0 (step, half in place)."""
    # Segment: readings after the last big upward jump (a refill the caller left in).
    # A quantised row whose level rises by two steps or more between readings (short of a
    # refill), more than once, is noisier than its step: its rounding is part of the noise,
    # and a new low is as likely a dip of the noise as use, so it is fitted as an unquantised
    # level. (One such rise alone may be an unseen top-up.) One pass finds the rows with a
    # rise large enough to be either; only those are looked at again.
    s, ncol = lv.shape
    jump = refill_jump(step)  # the one refill rule (gateway.readings), with each row's step
    low = np.where(step > 0, np.minimum(_NOISY_RISE * step, jump), jump)
    dl = shift_diff(lv, 1)
    dl[:, -1] = -np.inf
    cand = np.unique(np.flatnonzero(dl > low[:, None].astype(np.float32)) // ncol)
    start = np.zeros(s, dtype=np.int64)
    if cand.size:
        dc = dl[cand, :-1]
        rise = dc > jump[cand, None].astype(np.float32)
        jumped = row_sum(rise) > 0
        start[cand[jumped]] = ncol - 1 - np.argmax(rise[jumped, ::-1], axis=1)
        qc = np.flatnonzero(step[cand] > 0)
        if qc.size:
            after = np.arange(1, ncol) > start[cand[qc], None]
            up = (dc[qc] > (_NOISY_RISE * step[cand[qc], None]).astype(np.float32)) & after
            noisy = cand[qc[row_sum(up) >= _NOISY_RISES]]
            step[noisy] = 0.0
            half[noisy] = 0.0
    del dl
    at_last, at_start = flat_pos(x, n_valid - 1), flat_pos(x, start)
    x_last = take_at(x, at_last)
    span = x_last - take_at(x, at_start)
    return _Segment(start, n_valid - start, x_last, take_at(lv, at_last), take_at(lv, at_start), span)


def _fit_points(
    x: np.ndarray, lv: np.ndarray, valid: np.ndarray, seg: _Segment, q: np.ndarray, half: np.ndarray
) -> _Points:
    """The points to fit, compacted to the front of x and lv (in place) with the rest of each row zeroed."""
    # Points to fit: every reading, or for quantised slots the first reading at each new low,
    # placed mid-way through the gap in which the level crossed into it. Rows that drop
    # points are compacted so that the fitted points come first.
    # Masks of the first k points are rows of a table (0/1 in float32: multiplying by a bool
    # mask converts it element by element, at twice the cost).
    ncol = x.shape[1]
    start = seg.start
    floor_last = seg.y_last.copy()
    table, table_f = prefix_masks(ncol)
    n = seg.n_seg.copy()
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
        n[need] = row_sum(w)
        ri, ci = np.nonzero(w)
        pos = np.arange(ri.size) - (np.cumsum(n[need]) - n[need])[ri]
        x[need[ri], pos] = xs[ri, ci]
        lv[need[ri], pos] = ys[ri, ci]
    off = ~table[n]
    at_end = flat_pos(x, n - 1)
    x_end, y_end = take_at(x, at_end), take_at(lv, at_end)
    np.copyto(x, 0.0, where=off)
    np.copyto(lv, 0.0, where=off)
    del off
    return _Points(n, table_f[n], x_end, y_end, floor_last)


def _regress(X: np.ndarray, Y: np.ndarray, n: np.ndarray, mf: np.ndarray, mu0: np.ndarray) -> _Line:
    """The least-squares line through each row's n points, its residuals' variogram and the slope's variance."""
    # Least-squares line, then the variogram of its residuals: e^2 ~ 2 eta^2 + sigma^2 gap.
    s, ncol = X.shape
    table_f = prefix_masks(ncol)[1]
    nn = np.maximum(n, 1)
    mx, my = row_sum(X) / nn, row_sum(Y) / nn
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
        gap = shift_diff(X, lag)
        gap *= ml
        e2 = shift_diff(res, lag)
        e2 *= e2
        e2 *= ml
        gap, e2 = gap[:, :-lag], e2[:, :-lag]
        sums += (np.maximum(n - lag, 0), row_sum(gap), np.einsum("ij,ij->i", gap, gap),
                 row_sum(e2), np.einsum("ij,ij->i", gap, e2))  # fmt: skip
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
    pre = dx @ triangle(ncol)
    pre *= pre
    walk = np.einsum("ij,ij->i", gaps[0], pre)
    var_d = eta2 / sxx + sig2 * walk / (sxx * sxx)
    reg = (n >= _MIN_POINTS) & (sxx > 0) & np.isfinite(var_d)
    return _Line(rate_d, var_d, eta2, sig2, reg)


def _step_bound(
    line: _Line, q: np.ndarray, step: np.ndarray, seg: _Segment, floor_last: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data's rate and its variance: the line's, else for a quantised row the steps it went down over its span."""
    reg = line.reg
    bound = q & ~reg & (seg.span > 0)
    # Steps descended since the first reading (a drop between two readings may span several).
    k = np.where(q, np.maximum(np.rint((seg.y_first - floor_last) / np.where(q, step, 1.0)), 0), 0)
    rate_d = np.where(reg, line.rate_d, np.where(bound, np.maximum(k, 0.5) * step / seg.span, np.nan))
    var_d = np.where(reg, line.var_d, np.square(np.minimum(k + 1, 2) * step / seg.span) / 12)
    return rate_d, var_d, bound


def _combine_prior(
    rate_d: np.ndarray, var_d: np.ndarray, has_data: np.ndarray, mu0: np.ndarray, sd0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rate (>= 0), its variance, the prior's weight and where there is a prior: data and prior combined."""
    pd = np.where(has_data, 1 / np.maximum(var_d, _RATE_SD_FLOOR**2), 0.0)
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
    return np.maximum(rate, 0.0), var_r, prior_w, pp > 0


def _level_now(
    rate: np.ndarray, var_r: np.ndarray, line: _Line, pts: _Points, seg: _Segment,
    step: np.ndarray, half: np.ndarray, tau_now: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The level now, its variance, and the diffusion per day of the use to come."""
    reg, q = line.reg, step > 0
    sig2 = np.where(reg, line.sig2, _EVENT_SIZE * rate)
    # A quantised level cannot show bursts smaller than its step: the use behind it may come
    # in bursts that large, so its diffusion is at least that of bursts of one step.
    sig2 = np.maximum(sig2, _STEP_BURSTS * step * rate)
    eta2 = np.where(reg, line.eta2, step * step / 12)
    # Level now: from the last fitted point (or reading), kept inside the last reading's band.
    lvl = np.where(reg, pts.y_end - rate * (seg.x_last - pts.x_end), seg.y_last)
    lvl = np.where(q, np.clip(lvl, pts.floor_last - half, pts.floor_last + half), lvl)
    g = np.maximum(tau_now - seg.x_last, 0.0)
    level = np.clip(lvl - rate * g, 0.0, 1.0)
    var_l = eta2 + sig2 * g + var_r * g * g
    return level, var_l, sig2


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
) -> ChunkFit:
    """Forecast one chunk of S slots.

    zs: normal scores of extra quantiles of the time to empty (negative: earlier than P50),
    returned as `extra`. counted: (S,) bool, levels that count whole units (their band lies
    below the reading, not around it).
    """
    # Hot (S, N) arrays are float32 and updated in place: allocation, not arithmetic, is the cost.
    # The stages reuse the two of them (x and lv) from sorting to the fit.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ax = _prepare(t, y, now, away)
        step, half = _steps(ax.lv, ax.n_valid, step, counted)
        seg = _segment(ax.x, ax.lv, ax.n_valid, step, half)
        q = step > 0
        pts = _fit_points(ax.x, ax.lv, ax.valid, seg, q, half)
        line = _regress(ax.x, ax.lv, pts.n, pts.mask, mu0)
        rate_d, var_d, bound = _step_bound(line, q, step, seg, pts.floor_last)
        rate, var_r, prior_w, has_prior = _combine_prior(rate_d, var_d, line.reg | bound, mu0, sd0)
        level, var_l, sig2 = _level_now(rate, var_r, line, pts, seg, step, half, ax.tau_now)
        p10, p50, p90, extra = time_to_empty(level, rate, var_l, sig2, var_r, ax.now_d, ax.away, zs)
        sharp = np.where(np.isfinite(p50) & (p50 > 0), p10 / p50, (p10 == p50).astype(float))
        conf = np.clip(np.nan_to_num(sharp * (1 - prior_w)), 0.0, 1.0)
    method = np.where(line.reg, np.where(q, _STEPDOWN, _LEVEL), np.where(bound, _BOUND, np.where(has_prior, _PRIOR, _NONE)))
    return ChunkFit(
        rate=rate, level=level, p10=p10, p50=p50, p90=p90, confidence=conf, n_used=np.where(line.reg, pts.n, seg.n_seg),
        method=method, rate_sd=np.sqrt(var_r), prior_weight=prior_w, step=step, extra=extra,
    )
