"""Forecast quality on a seeded simulated fleet of all six kinds, through the service's own code.

Devices are the pure `firmware_sim` models with their quirks on (quantisation, noise, sentinels,
reboots, clock skew, offline bursts, away periods, purchases elsewhere), driven forward without a
broker. Their messages go through `parse_birth` / `parse_telemetry` (JSON Schema included) into a
`GatewayStorage` on SQLite (normalisation, skew correction, refill detection), and the forecasts
come from the service's `Forecaster` (thinning, fleet priors, away periods, the core). The
Forecaster refreshes the whole fleet once a simulated week, which relearns the priors; at each
case's evaluation time it forecasts that slot from the store.

A case is a true run-out (`truth().empty_at`) whose unit was already in the slot 7 days before;
at that moment we compare the time to empty with the truth, for our forecast and two baselines
on the same cases: a least-squares line through every stored reading since the last refill
(Prometheus `predict_linear`), and a fixed 20 % rule, read as "when the level reaches 20 %, it
is empty in 7 days" (its error is |lead - 7 days|, lead = time from the first reading at or
below 20 % to the run-out).

Run: .venv/bin/python bench/forecast_quality.py [--devices 16] [--days 365] [--seed 7]   (about 2 minutes here)
Prints a table per kind and, as the last line, one JSON object with the figures; writes
docs/forecast_calibration.png.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from firmware_sim import KINDS, make_device  # noqa: E402
from gateway import (  # noqa: E402
    Forecaster,
    GatewayStorage,
    InvalidMessage,
    TelemetryIn,
    away_from,
    forecast_batch,
    make_engine,
    parse_birth,
    parse_status,
    parse_telemetry,
)
from replenish.bootstrap import migrate  # noqa: E402

DAY = 86_400.0
LEAD_DAYS = 7.0  # the question: how well do we know the run-out a week ahead?
START = datetime(2026, 1, 1, tzinfo=UTC)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)  # probability of being empty sooner; P10 is what the policy orders on
HORIZON_DAYS = 365.0  # forecasts beyond a year (or "never") count as a year in the errors
THRESHOLD = 0.2
MIN_HISTORY_DAYS = 1.0  # a case needs the device to have reported for a day before its evaluation
# Laser toner lasts years (3,000 pages at ~2 a day): more lasers, started part-used, give it cases.
LASER_FACTOR, LASER_START_PCT = 3, (5.0, 60.0)
SKIP_SLOTS = {("printer.laser", "waste")}  # a waste box takes 2-10 toners to fill: no run-out within a year
PLOT = Path(__file__).resolve().parents[1] / "docs" / "forecast_calibration.png"


def _simulate(job: tuple[str, list[str], int, float, float]) -> dict[str, Any]:
    """Worker: drive devices to the end, parse what they publish; returns parsed events and the truth."""
    kind, ids, seed, days, interval_h = job
    events: list[tuple[float, int, str, str, Any]] = []
    truth: dict[str, Any] = {}
    rejected: dict[str, int] = defaultdict(int)
    parsers = {"birth": parse_birth, "telemetry": parse_telemetry, "status": parse_status}
    for n, device_id in enumerate(ids):
        start_levels = None
        if kind == "printer.laser":
            start_levels = {"toner": random.Random(f"{seed}:{device_id}").uniform(*LASER_START_PCT)}
        dev = make_device(kind, device_id, seed, START, interval=timedelta(hours=interval_h), start_levels=start_levels)
        for k, m in enumerate(dev.advance(START + timedelta(days=days))):
            try:
                parsed = parsers[m.suffix](json.dumps(m.payload).encode(), device_id)
            except InvalidMessage as exc:  # the service dead-letters it; so do we (count only)
                rejected[exc.reason] += 1
                continue
            events.append((m.at, n * 10_000_000 + k, m.suffix, device_id, parsed))
        tr = dev.truth()
        refills: dict[str, list[float]] = defaultdict(list)
        for r in tr.refills:
            refills[r.slot].append(r.at.timestamp())
        truth[device_id] = {
            "empty_at": {s: [e.timestamp() for e in es] for s, es in tr.empty_at.items()},
            "refills": dict(refills),
            "away": [(s, e) for s, e in dev.away],  # the household's calendar, future trips included
            "slots": list(dev.names),
        }
    return {"events": events, "truth": truth, "rejected": dict(rejected)}


def find_cases(truth: dict[str, dict[str, Any]], kinds: dict[str, str], end: float) -> list[dict[str, Any]]:
    """Run-outs whose unit was in the slot LEAD_DAYS before, and the device reporting for a day by then."""
    cases = []
    for device_id, tr in truth.items():
        for slot in tr["slots"]:
            if (kinds[device_id], slot) in SKIP_SLOTS:
                continue
            refills = tr["refills"].get(slot, [])
            for e in tr["empty_at"].get(slot, []):
                t_eval = e - LEAD_DAYS * DAY
                if e > end or t_eval < START.timestamp() + MIN_HISTORY_DAYS * DAY:
                    continue
                if any(t_eval < r <= e for r in refills):
                    continue  # the unit in the slot at evaluation time is not the one that ran out
                cases.append({"device": device_id, "slot": slot, "kind": kinds[device_id], "empty": e, "eval": t_eval})
    return cases


def predict_linear(t: np.ndarray, y: np.ndarray, now: float) -> float:
    """Days to zero of a least-squares line through every reading (Prometheus predict_linear)."""
    if len(t) < 2 or np.ptp(t) == 0:
        return np.inf
    x = (t - now) / DAY
    slope, intercept = np.polyfit(x, y, 1)
    if slope >= 0:
        return np.inf
    return max(intercept / -slope, 0.0)


def threshold_lead(t: np.ndarray, y: np.ndarray, empty: float) -> float:
    """Days from the first reading at or below THRESHOLD (before the run-out) to the run-out; 0 if none."""
    low = np.flatnonzero((y <= THRESHOLD) & (t <= empty))
    return (empty - t[low[0]]) / DAY if low.size else 0.0


class Replay:
    """Feeds the parsed messages into the store in arrival order, like the ingest worker."""

    def __init__(self, store: GatewayStorage, events: list[tuple[float, int, str, str, Any]]) -> None:
        self.store, self.events, self.i = store, events, 0

    def until(self, t: float) -> None:
        """Store every message that arrived by t."""
        batch: list[TelemetryIn] = []
        ev = self.events
        while self.i < len(ev) and ev[self.i][0] <= t:
            at, _, suffix, device_id, parsed = ev[self.i]
            self.i += 1
            when = datetime.fromtimestamp(at, UTC)
            if suffix == "telemetry":
                batch.append(TelemetryIn(device_id, parsed, when))
                continue
            if batch:  # keep each device's messages in arrival order around births and statuses
                self.store.telemetry.store(batch)
                batch = []
            if suffix == "birth":
                self.store.registry.record_birth(device_id, parsed, when)
            else:
                self.store.registry.record_status(device_id, parsed, when)
        if batch:
            self.store.telemetry.store(batch)


def evaluate(
    forecaster: Forecaster, store: GatewayStorage, due: list[dict[str, Any]], now: float, away: Any, dump: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Forecast the due cases' slots as the service would, plus the baselines, at `now`."""
    when = datetime.fromtimestamp(now, UTC)
    store.settler.settle()  # as the service's tick does: fold the appended readings into their slots first
    slots = {(s.device_id, s.slot_id): s for s in store.registry.slots({c["device"] for c in due})}
    picked = [slots[(c["device"], c["slot"])] for c in due]
    keys, inputs = forecaster.inputs(picked, when, away)
    fa = forecast_batch(**inputs, quantiles=(0.25, 0.75))
    methods = [r.explanation["method"] for r in forecaster.rows(keys, fa, when)]
    # The same inputs without the calendar; every stored reading for the baseline.
    plain = forecast_batch(**(inputs | {"away": None}))
    series = store.forecasts.readings_since((s.device_id, s.slot_id, s.segment_start) for s in picked)
    periods = inputs["away"]  # the periods the service passed to the core, per slot
    rows = []
    for i, c in enumerate(due):
        pts = series.get(keys[i], [])
        t = np.array([p[0].timestamp() for p in pts], dtype=np.float64)
        y = np.array([p[1] for p in pts], dtype=np.float64)
        q = [fa.tte_p10_days[i], fa.tte_quantiles[i, 0], fa.tte_p50_days[i], fa.tte_quantiles[i, 1], fa.tte_p90_days[i]]
        rows.append(c | {
            "truth": (c["empty"] - now) / DAY, "q": [float(v) for v in q], "p10_no_away": float(plain.tte_p10_days[i]),
            "linear": predict_linear(t, y, now), "method": methods[i], "seg_start": picked[i].segment_start or START,
        })  # fmt: skip
        if dump is not None:
            ok = ~np.isnan(inputs["t"][i])
            dump.append(rows[-1] | {
                "t": inputs["t"][i, ok], "y": inputs["level"][i, ok], "now": now, "step": float(inputs["step"][i]),
                "mu": float(inputs["prior_rate"][i]), "sd": float(inputs["prior_rate_sd"][i]),
                "away": periods[i] if periods else [], "unit": picked[i].unit, "capacity": picked[i].capacity,
            })  # fmt: skip
    return rows


def _cap(days: np.ndarray) -> np.ndarray:
    return np.minimum(np.where(np.isnan(days), np.nan, days), HORIZON_DAYS)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """MAE of days to empty and how often each forecast was early enough, over answered cases."""
    ans = [r for r in rows if not np.isnan(r["q"][2])]  # "never empties" is an answer (capped at a year)
    out: dict[str, Any] = {"cases": len(rows), "answered": len(ans)}
    if not ans:
        return out
    truth = np.array([r["truth"] for r in ans])
    q = _cap(np.array([r["q"] for r in ans]))
    lin = _cap(np.array([r["linear"] for r in ans]))
    lead = np.array([r["lead"] for r in ans])
    out |= {
        "mae_days": round(float(np.mean(np.abs(q[:, 2] - truth))), 2),
        "mae_linear_days": round(float(np.mean(np.abs(lin - truth))), 2),
        "mae_threshold_days": round(float(np.mean(np.abs(lead - LEAD_DAYS))), 2),
        "p10_coverage": round(float(np.mean(truth >= q[:, 0])), 3),
        "linear_early_enough": round(float(np.mean(truth >= lin)), 3),
        "threshold_in_time": round(float(np.mean(lead >= LEAD_DAYS)), 3),
        "observed": [round(float(np.mean(truth < q[:, j])), 3) for j in range(len(QUANTILES))],
        "median_p10_days": round(float(np.median(q[:, 0])), 2),
        "prior_only": int(sum(r["method"] == "prior only" for r in ans)),
        "no_away_p10_coverage": round(float(np.mean(truth >= _cap(np.array([r["p10_no_away"] for r in ans])))), 3),
    }
    return out


def plot(per_kind: dict[str, dict[str, Any]], overall: dict[str, Any], path: Path) -> None:
    """Nominal vs observed probability of running out before each forecast quantile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.5), dpi=110)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    for kind, s in per_kind.items():
        if "observed" in s:
            ax.plot(QUANTILES, s["observed"], marker="o", ms=3, lw=1, alpha=0.7, label=f"{kind} (n={s['answered']})")
    ax.plot(QUANTILES, overall["observed"], marker="s", color="black", lw=2.5, label=f"all kinds (n={overall['answered']})")
    ax.axhspan(0.08, 0.12, xmin=0, xmax=0.2, color="tab:green", alpha=0.15)
    ax.set_xlabel("nominal: forecast quantile of time to empty (P10 ... P90)")
    ax.set_ylabel("observed: share of run-outs sooner than the quantile")
    ax.set_title(f"Time to empty {LEAD_DAYS:.0f} days before the run-out, simulated fleet")
    ax.set_xticks(QUANTILES)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:  # noqa: C901, PLR0915
    """Simulate, ingest, forecast at each case, compare, report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=16, help="devices per kind (lasers: 3x)")
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--interval-hours", type=float, default=6.0, help="report interval of every device")
    ap.add_argument("--max-cases", type=int, default=250, help="cases per kind at most (a seeded sample)")
    ap.add_argument("--refresh-days", type=float, default=7.0, help="full-fleet refresh (and prior relearning)")
    ap.add_argument("--tick-hours", type=float, default=12.0, help="cases due within a tick are forecast at its end")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dump", type=Path, help="pickle each case's core inputs here (for offline study)")
    ap.add_argument("--plot", type=Path, default=PLOT)
    args = ap.parse_args()
    t_all = time.perf_counter()
    end = START.timestamp() + args.days * DAY

    jobs, kinds = [], {}
    for kind in KINDS:
        ids = [f"{kind.replace('.', '-')}-{i:04d}" for i in range(args.devices * (LASER_FACTOR if kind == "printer.laser" else 1))]
        kinds |= dict.fromkeys(ids, kind)
        for w in range(args.workers):
            jobs.append((kind, ids[w :: args.workers], args.seed, args.days, args.interval_hours))
    events: list[tuple[float, int, str, str, Any]] = []
    truth: dict[str, Any] = {}
    rejected: dict[str, int] = defaultdict(int)
    pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
    for part in pool.map(_simulate, jobs) if pool else map(_simulate, jobs):
        events += part["events"]
        truth |= part["truth"]
        for k, v in part["rejected"].items():
            rejected[k] += v
    if pool:
        pool.shutdown()
    events.sort(key=lambda e: (e[0], e[1]))
    sim_s = time.perf_counter() - t_all
    print(f"simulated and parsed {len(truth)} devices, {len(events):,} messages in {sim_s:.0f} s; rejected {dict(rejected)}", file=sys.stderr)

    cases = find_cases(truth, kinds, end)
    rng = random.Random(args.seed)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in cases:
        by_kind[c["kind"]].append(c)
    cases = [c for k in KINDS for c in (rng.sample(by_kind[k], args.max_cases) if len(by_kind[k]) > args.max_cases else by_kind[k])]
    cases.sort(key=lambda c: c["eval"])

    tmp = tempfile.TemporaryDirectory()
    engine = make_engine(f"sqlite:///{tmp.name}/quality.db")
    migrate(engine)
    store = GatewayStorage.on(engine)
    for device_id in truth:
        store.registry.set_store_readings(device_id, True)  # the households' telemetry consent
    forecaster = Forecaster(store.registry, store.forecasts, batch_size=100_000)
    away = away_from({d: [(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)) for s, e in tr["away"]] for d, tr in truth.items()})
    replay = Replay(store, events)
    rows: list[dict[str, Any]] = []
    tick = args.tick_hours * 3600.0
    next_refresh = START.timestamp() + args.refresh_days * DAY
    ci = 0
    t_ing = t_fc = 0.0
    now = START.timestamp()
    dump: list[dict[str, Any]] = []
    while ci < len(cases) and now < end:
        now = min(now + tick, end)
        refresh = now >= next_refresh
        due = []
        while ci < len(cases) and cases[ci]["eval"] <= now:
            due.append(cases[ci])
            ci += 1
        if not (due or refresh):
            continue  # nothing to look at yet: the messages wait and go in as one bigger batch
        t0 = time.perf_counter()
        replay.until(now)
        t1 = time.perf_counter()
        when = datetime.fromtimestamp(now, UTC)
        if refresh:
            next_refresh += args.refresh_days * DAY
            store.settler.settle()
            while forecaster.refresh(when, away):
                pass
        if due:
            rows += evaluate(forecaster, store, due, now, away, dump if args.dump else None)
        t_fc += time.perf_counter() - t1
        t_ing += t1 - t0
    if args.dump:
        with open(args.dump, "wb") as f:
            pickle.dump(dump, f)
    # The threshold rule needs the readings up to the run-out itself: finish the replay, then look.
    replay.until(end)
    for r in rows:
        hist = store.forecasts.history(r["device"], r["slot"], r.pop("seg_start"))
        t = np.array([p[0].timestamp() for p in hist])
        y = np.array([p[1] for p in hist])
        r["lead"] = threshold_lead(t, y, r["empty"]) if len(t) else 0.0

    per_kind = {k: summarise([r for r in rows if r["kind"] == k]) for k in KINDS}
    overall = summarise(rows)
    plot(per_kind, overall, args.plot)
    total_s = time.perf_counter() - t_all

    head = f"{'kind':16} {'cases':>5} {'ans':>4} {'MAE ours':>8} {'MAE lin':>8} {'MAE 20%':>8} {'P10 cov':>7} {'lin ok':>6} {'20% ok':>6}"
    print(head)
    for name, s in [*per_kind.items(), ("all", overall)]:
        if "mae_days" in s:
            print(f"{name:16} {s['cases']:5d} {s['answered']:4d} {s['mae_days']:8.2f} {s['mae_linear_days']:8.2f} "
                  f"{s['mae_threshold_days']:8.2f} {s['p10_coverage']:7.3f} {s['linear_early_enough']:6.3f} {s['threshold_in_time']:6.3f}")  # fmt: skip
    print(f"observed share empty before P10/P25/P50/P75/P90: {overall['observed']}; without away periods P10 covers {overall['no_away_p10_coverage']}")
    priors = {f"{m}/{s}": (round(p.rate, 4), round(p.sd, 4), p.capacity) for (m, s), p in sorted(forecaster.priors.items())}
    print(f"priors learnt (rate, sd per day, and the capacity they refer to when learnt in the slot's unit): {priors}")
    print(f"time: {total_s:.0f} s (simulate+parse {sim_s:.0f} s on {args.workers} workers, store {t_ing:.0f} s, forecasts {t_fc:.0f} s); plot {args.plot}")
    print(json.dumps({
        "bench": "forecast_quality", "seed": args.seed, "devices": len(truth), "devices_per_kind": args.devices,
        "days": args.days, "interval_hours": args.interval_hours, "lead_days": LEAD_DAYS, "messages": len(events),
        "rejected": dict(rejected), "overall": overall, "per_kind": per_kind, "seconds": round(total_s, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
