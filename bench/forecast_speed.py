"""Forecast a synthetic fleet of 1,000,000 slots x 60 readings in one call, against a per-slot loop.

Run: .venv/bin/python bench/forecast_speed.py [--slots 1000000] [--readings 60] [--loop-sample 2000]
Prints a human summary and, as the last line, one JSON object with the figures.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # the "one core" figure: set before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gateway import forecast_batch  # noqa: E402

DAY = 86_400.0
Z = 1.2815515655446004
GEN_CHUNK = 100_000  # rows generated at a time, to bound the generator's temporaries


def make_fleet(slots: int, readings: int, seed: int) -> dict[str, np.ndarray]:
    """A mixed fleet: bursty use, 30 % quantised to 10 % steps, noise, swaps, ragged rows, refills, priors."""
    rng = np.random.default_rng(seed)
    t = np.empty((slots, readings))
    y = np.empty((slots, readings))
    now = np.empty(slots)
    for lo in range(0, slots, GEN_CHUNK):
        s = min(GEN_CHUNK, slots - lo)
        gaps = rng.exponential(0.5 * DAY, (s, readings))  # a report every 12 h on average
        ts = 1.7e9 + rng.uniform(0, 30 * DAY, (s, 1)) + np.cumsum(gaps, axis=1)
        rate = rng.lognormal(np.log(0.008), 0.6, s)[:, None]
        use = np.cumsum(gaps / DAY * rate * rng.gamma(0.5, 2.0, (s, readings)), axis=1)
        lv = 1.0 - use + rng.normal(0, 0.005, (s, readings))
        refill = rng.random(s) < 0.02  # a refill the caller failed to cut off
        lv[refill, readings // 2 :] += 0.5
        quant = rng.random(s) < 0.3
        lv[quant] = np.round(np.clip(lv[quant], 0, 1) * 10) / 10
        swap = np.flatnonzero(rng.random(s) < 0.05)  # out-of-order delivery
        ts[swap, 3], ts[swap, 4] = ts[swap, 4].copy(), ts[swap, 3].copy()
        n = rng.integers(readings // 2, readings + 1, s)  # ragged: NaN padding at the end
        pad = np.arange(readings)[None, :] >= n[:, None]
        now[lo : lo + s] = np.nanmax(np.where(pad, np.nan, ts), axis=1) + rng.uniform(0, DAY, s)
        ts[pad], lv[pad] = np.nan, np.nan
        t[lo : lo + s], y[lo : lo + s] = ts, np.clip(lv, 0.0, 1.0)
    has_prior = rng.random(slots) < 0.1
    prior = np.where(has_prior, 0.008, np.nan)
    return {"t": t, "y": y, "now": now, "prior_rate": prior, "prior_rate_sd": np.where(has_prior, 0.004, np.nan)}


def forecast_one(t, y, now, mu0, sd0):  # noqa: ANN001, ANN201, C901, PLR0915
    """The same maths for one slot, written the obvious way: 1-D arrays and Python branches."""
    ok = np.isfinite(t) & np.isfinite(y)
    order = np.argsort(t[ok], kind="stable")
    t, y = t[ok][order], y[ok][order]
    step = 0.0
    if len(y) >= 3:
        for cand in (0.25, 0.2, 0.1, 0.05, 0.01):
            if np.all(np.abs(y / cand - np.rint(y / cand)) < 1e-6 / cand):
                step = cand
                break
        ki = np.rint(y / 0.01)
        if step == 0.01 and 2 * np.sum(ki[1:] == ki[:-1]) < len(y) - 1:
            step = 0.0  # whole percent that moves at most readings: rounding is noise
    cut = np.flatnonzero(np.diff(y) > 0.1 + step)
    start = cut[-1] + 1 if len(cut) else 0
    t, y = t[start:], y[start:]
    if step > 0 and np.sum(np.diff(y) > 1.5 * step) >= 2:
        step = 0.0  # noisier than its step
    x = (t - t[0]) / DAY if len(t) else t
    if step > 0:
        prev = np.r_[np.inf, np.minimum.accumulate(y)[:-1]]
        down = np.isfinite(prev) & (y < prev - step / 2)
        xs = np.r_[x[:1], (x[1:] + x[:-1]) / 2][down]
        ys = ((prev + y) / 2)[down]
    else:
        xs, ys = x, y
    n = len(xs)
    reg = False
    if n >= 3:
        dx, dy = xs - xs.mean(), ys - ys.mean()
        sxx = dx @ dx
        slope = (dx @ dy) / sxx
        res = dy - slope * dx
        g = np.r_[xs[1:] - xs[:-1], xs[2:] - xs[:-2]]
        e2 = np.r_[np.diff(res), res[2:] - res[:-2]] ** 2
        design = np.c_[np.ones_like(g), g]
        alpha, beta = np.linalg.solve(design.T @ design, design.T @ e2)
        if alpha < 0:
            alpha, beta = 0.0, (g @ e2) / (g @ g)
        if beta < 0:
            alpha, beta = e2.mean(), 0.0
        eta2, r_d = alpha / 2, -slope
        r_ref = max(r_d, mu0, 0.0) if np.isfinite(mu0) else max(r_d, 0.0)
        sig2 = ((n - 1) * beta + 3.0 * 0.02 * r_ref) / (n - 1 + 3.0)
        walk = np.diff(xs) @ np.cumsum(dx)[:-1] ** 2
        v_d = eta2 / sxx + sig2 * walk / sxx**2
        reg = sxx > 0
    span = x[-1] - x[0] if len(x) else 0.0
    bound = step > 0 and not reg and span > 0
    if bound:
        k = max(np.rint((y[0] - y.min()) / step), 0.0)  # steps descended
        r_d, v_d = max(k, 0.5) * step / span, (min(k + 1, 2) * step / span) ** 2 / 12
    pd = 1 / max(v_d, 1e-12) if reg or bound else 0.0
    pp = 1 / max(sd0, 1e-6) ** 2 if np.isfinite(mu0) and np.isfinite(sd0) else 0.0
    if pd + pp == 0 or not len(y):
        return np.nan, np.nan, np.nan
    rate = (pd * (r_d if pd else 0.0) + pp * (mu0 if pp else 0.0)) / (pd + pp)
    var_r = 1 / (pd + pp)
    if pp and mu0 > 0 and (pd == 0 or r_d > 0):  # the prior is log-normal: combine log-rates
        p0 = 1 / max(np.log1p((sd0 / mu0) ** 2), 1e-12)
        pl = r_d**2 / max(v_d, 1e-12) if pd else 0.0
        rate = np.exp((p0 * np.log(mu0) + (pl * np.log(r_d) if pd else 0.0)) / (p0 + pl))
        var_r = rate**2 / (p0 + pl)
    rate = max(rate, 0.0)
    if not reg:
        sig2, eta2 = 0.02 * rate, step**2 / 12
    sig2 = max(sig2, 2.0 * step * rate)  # bursts as large as one step
    lvl = ys[-1] - rate * (x[-1] - xs[-1]) if reg else y[-1]
    if step > 0:
        lvl = np.clip(lvl, y.min() - step / 2, y.min() + step / 2)
    gap = max((now - t[0]) / DAY - x[-1], 0.0)
    level = np.clip(lvl - rate * gap, 0.0, 1.0)
    var_l = eta2 + sig2 * gap + var_r * gap**2
    cv = np.sqrt(var_r) / rate if rate > 0 else np.inf
    skew = cv < 3.0
    v_hi = (rate * np.expm1(Z * cv) / Z) ** 2 if skew else var_r
    v_lo = (rate * -np.expm1(-Z * cv) / Z) ** 2 if skew else var_r
    c = level**2 - Z**2 * var_l
    b = 2 * level * rate + Z**2 * sig2 * (np.exp(Z * cv) if skew else 1.0)
    a = rate**2 - Z**2 * v_hi
    p10 = 2 * c / (b + np.sqrt(max(b * b - 4 * a * c, 0.0))) if c > 0 else 0.0
    b = 2 * level * rate + Z**2 * sig2
    a = rate**2 - Z**2 * v_lo
    p90 = (b + np.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a) if a > 0 else np.inf
    p50 = level / rate if rate > 0 else (np.inf if level > 0 else 0.0)
    return p10, p50, p90


def main() -> None:
    """Generate, time both ways, check they agree, report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--slots", type=int, default=1_000_000)
    ap.add_argument("--readings", type=int, default=60)
    ap.add_argument("--loop-sample", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args()

    t0 = time.perf_counter()
    fleet = make_fleet(args.slots, args.readings, args.seed)
    gen_s = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    fa = forecast_batch(
        fleet["t"], fleet["y"], fleet["now"], prior_rate=fleet["prior_rate"], prior_rate_sd=fleet["prior_rate_sd"]
    )
    vec_s = time.perf_counter() - t0
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sample = np.random.default_rng(args.seed + 1).choice(args.slots, min(args.loop_sample, args.slots), replace=False)
    t0 = time.perf_counter()
    ref = np.array(
        [
            forecast_one(fleet["t"][i], fleet["y"][i], fleet["now"][i], fleet["prior_rate"][i], fleet["prior_rate_sd"][i])
            for i in sample
        ]
    )
    loop_per_slot = (time.perf_counter() - t0) / len(sample)

    got = np.c_[fa.tte_p10_days[sample], fa.tte_p50_days[sample], fa.tte_p90_days[sample]]
    both = np.isfinite(ref) & np.isfinite(got)
    same_kind = np.all(np.isnan(ref) == np.isnan(got)) and np.all(np.isinf(ref) == np.isinf(got))
    rel = np.abs(got[both] - ref[both]) / np.maximum(np.abs(ref[both]), 1.0)
    max_rel = float(rel.max()) if rel.size else 0.0
    speedup = loop_per_slot * args.slots / vec_s
    methods = np.bincount(fa.method, minlength=5)

    print(f"fleet: {args.slots:,} slots x {args.readings} readings generated in {gen_s:.1f} s")
    print(f"vectorised forecast_batch: {vec_s:.3f} s ({vec_s / args.slots * 1e6:.2f} us/slot), one thread")
    print(f"per-slot loop: {loop_per_slot * 1e6:.0f} us/slot on {len(sample)} slots -> {loop_per_slot * args.slots:.0f} s")
    print(f"speed-up: {speedup:.0f}x; loop and vectorised agree to {max_rel:.1e} (relative, float32 core)")
    print(f"methods: {dict(zip(('none', 'prior', 'level', 'step-down', 'bound'), methods.tolist()))}")
    print(f"peak RSS: {rss_before:.0f} MiB with the fleet, {rss_after:.0f} MiB after forecasting")
    print(
        json.dumps(
            {
                "bench": "forecast_speed",
                "slots": args.slots,
                "readings_per_slot": args.readings,
                "vectorised_s": round(vec_s, 3),
                "loop_s_per_slot": round(loop_per_slot, 7),
                "loop_sample": len(sample),
                "speedup": round(speedup, 1),
                "agree_max_rel": max_rel,
                "agree_same_kind": bool(same_kind),
                "peak_rss_mib": round(rss_after),
                "fleet_rss_mib": round(rss_before),
            }
        )
    )


if __name__ == "__main__":
    main()
