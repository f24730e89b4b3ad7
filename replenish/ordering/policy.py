"""The ordering policy: a pure function from one slot's situation to a decision; no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from .status import OrderStatus

__all__ = ["Decision", "SlotMode", "SlotSituation", "decide"]


class SlotMode(StrEnum):
    """How a household wants a slot replenished (SPEC 4)."""

    AUTO = "auto"  # placed, held for a cancel window, then released
    APPROVE = "approve"  # the exact product and price are shown; the household must approve
    NOTIFY = "notify"  # tell only: "never", where a cancel means "not now"


# An order waiting for approval needs time for the household to answer; a day is what
# "approve before money moves" costs in lead time.
APPROVAL_ALLOWANCE = timedelta(days=1)
# A line through fewer readings than a day of hourly telemetry swings wildly; such a forecast only
# counts once the level is low. Kept after the fleet priors were wired in (issue 4), by measure:
# on bench/forecast_quality.py's fleet, P10 a week before run-out covers 0.77 of cases resting on
# fewer than 24 readings against 0.83 for the rest, and a model new to the fleet has no prior.
MIN_READINGS = 24
LOW_LEVEL = 0.15


@dataclass(frozen=True, slots=True)
class SlotSituation:
    """Everything the policy needs to know about one slot, as plain values."""

    device_id: str
    slot_id: str
    mode: SlotMode
    auto_order_consent: bool
    open_order: bool
    empty_p10: datetime | None
    empty_p50: datetime | None
    empty_p90: datetime | None
    level_now: float | None
    readings_used: int
    lead_time: timedelta
    cancel_window: timedelta
    order_cost_cents: int
    spent_this_month_cents: int
    monthly_budget_cents: int
    currency: str = "EUR"
    use_seen: bool = True  # the forecast rests on a level that moved, not only on a bound or a prior
    step: float = 0.0  # the slot's quantisation step as a fraction of capacity (0: unquantised)
    # The household's away periods ahead (start, end), sorted: no parcel may arrive inside one (SPEC 4).
    # The forecast already pauses use while away, so `empty_p10` is the run-out with them counted.
    away: tuple[tuple[datetime, datetime], ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for a slot now, and why, in words and numbers."""

    action: Literal["wait", "order", "notify"]
    reason: str
    status: OrderStatus | None = None  # held or awaiting approval, for an order
    release_at: datetime | None = None
    why: dict[str, Any] = field(default_factory=dict)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _away_at(t: datetime, away: tuple[tuple[datetime, datetime], ...]) -> tuple[datetime, datetime] | None:
    """The away period `t` falls in, if any."""
    return next(((start, end) for start, end in away if start <= t < end), None)


def decide(s: SlotSituation, now: datetime, review_every: timedelta) -> Decision:
    """Order when waiting until the next review would let the pessimistic (P10) run-out beat delivery."""
    if not s.auto_order_consent and s.mode != SlotMode.NOTIFY:
        return Decision("wait", "no auto_order consent for this device")
    if s.open_order:
        return Decision("wait", "an order for this slot is already in flight")
    if s.empty_p10 is None:
        return Decision("wait", "no forecast of running out yet")
    if s.readings_used < MIN_READINGS and (s.level_now is None or s.level_now > LOW_LEVEL):
        return Decision("wait", f"only {s.readings_used} readings since the last refill; too few to act on")
    # A level that has not moved since the refill bounds the use (at most one hidden step), it does
    # not measure it: a full cartridge would be reordered on a worst case. No surprise parcels
    # (SPEC 2): such a slot waits until it is on its last step or low.
    if not s.use_seen and (s.level_now is None or s.level_now > max(s.step, LOW_LEVEL) + 1e-9):
        return Decision("wait", "no use seen since the last refill: the level has not moved yet")
    over_budget = s.spent_this_month_cents + s.order_cost_cents > s.monthly_budget_cents
    needs_approval = s.mode == SlotMode.APPROVE or over_budget
    hold = APPROVAL_ALLOWANCE if needs_approval else s.cancel_window
    arrives = now + hold + s.lead_time
    why = {
        "level_now": s.level_now,
        "readings_used": s.readings_used,
        "empty_p10": _iso(s.empty_p10),
        "empty_p50": _iso(s.empty_p50),
        "empty_p90": _iso(s.empty_p90),
        "lead_time_days": s.lead_time.total_seconds() / 86400,
        "hold_hours": hold.total_seconds() / 3600,
        "expected_arrival": _iso(arrives),
        "review_every_hours": review_every.total_seconds() / 3600,
        "order_cost_cents": s.order_cost_cents,
        "spent_this_month_cents": s.spent_this_month_cents,
        "monthly_budget_cents": s.monthly_budget_cents,
    }
    days_left = (s.empty_p10 - now).total_seconds() / 86400
    summary = (
        f"runs out in {max(days_left, 0):.1f} days at the earliest (P10); "
        f"delivery takes {why['lead_time_days']:.1f} days after a {why['hold_hours']:.0f} h hold"
    )
    away_now = _away_at(arrives, s.away)
    if away_now is not None:  # a parcel ordered now would arrive while the household is away
        leave, back = away_now
        why["away"] = [leave.isoformat(), back.isoformat()]
        if s.empty_p10 >= back:
            return Decision("wait", f"a parcel ordered now would arrive while the household is away ({leave:%b %d}–{back:%b %d}); it is ordered to arrive after", why=why)
        return Decision("notify", f"{summary}; it may run out before the household is back on {back:%b %d}, and a parcel ordered now would arrive while they are away", why=why)
    away_next = _away_at(arrives + review_every, s.away)
    if away_next is not None and s.empty_p10 < away_next[1] + hold + s.lead_time:
        # Waiting one more review would land the parcel in the time away, and after it is too late: now.
        why["away"] = [away_next[0].isoformat(), away_next[1].isoformat()]
        summary = f"{summary}; the household is away from {away_next[0]:%b %d}, so it is ordered to arrive before"
    elif arrives + review_every < s.empty_p10:
        return Decision("wait", "enough left to wait until the next review", why=why)
    if s.mode == SlotMode.NOTIFY:
        return Decision("notify", summary, why=why)
    if over_budget:
        reason = f"{summary}; over the monthly budget, so it waits for approval"
        return Decision("order", reason, OrderStatus.AWAITING_APPROVAL, None, why)
    if s.mode == SlotMode.APPROVE:
        return Decision("order", f"{summary}; waits for approval", OrderStatus.AWAITING_APPROVAL, None, why)
    return Decision("order", summary, OrderStatus.HELD, now + s.cancel_window, why)
