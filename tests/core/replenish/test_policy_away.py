"""No parcel arrives while the household is away: the policy orders before departure or after return (SPEC 4); known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from replenish.ordering import SlotSituation, decide

NOW = datetime(2026, 11, 2, 8, tzinfo=UTC)
DAY = timedelta(days=1)
REVIEW = timedelta(hours=6)
# Hold 1 day + lead 4 days: a parcel ordered now arrives on Nov 07 08:00.
ARRIVES = NOW + 5 * DAY


def _s(p10: datetime, away: tuple[tuple[datetime, datetime], ...]) -> SlotSituation:
    return SlotSituation(
        device_id="d", slot_id="black", mode="auto", auto_order_consent=True, open_order=False,
        empty_p10=p10, empty_p50=p10 + 2 * DAY, empty_p90=p10 + 5 * DAY, level_now=0.3, readings_used=48,
        lead_time=4 * DAY, cancel_window=DAY, order_cost_cents=1500, spent_this_month_cents=0, monthly_budget_cents=5000,
        away=away,
    )  # fmt: skip


def test_a_parcel_that_would_arrive_while_away_waits_to_arrive_after_return_when_the_slot_lasts() -> None:
    trip = (NOW + 3 * DAY, NOW + 10 * DAY)
    p10 = trip[1] + DAY // 2  # it lasts until half a day after they are back (use pauses while away)
    d = decide(_s(p10, (trip,)), NOW, REVIEW)
    assert d.action == "wait" and "arrive after" in d.reason and d.why["away"] == [trip[0].isoformat(), trip[1].isoformat()]
    on_return = decide(_s(p10, (trip,)), trip[1] - 5 * DAY, REVIEW)
    assert on_return.action == "wait", "a parcel ordered now would arrive as they come back, and there is still a review to spare"
    later = decide(_s(p10, (trip,)), trip[1] - 5 * DAY + DAY // 2, REVIEW)
    assert later.action == "order" and later.release_at == trip[1] - 4 * DAY + DAY // 2, "ordered to arrive half a day after return"


def test_a_slot_that_would_run_out_before_return_is_ordered_before_departure() -> None:
    trip = (ARRIVES + 3 * 3600 * timedelta(seconds=1), NOW + 20 * DAY)  # leaves three hours after a parcel ordered now arrives
    d = decide(_s(NOW + 15 * DAY, (trip,)), NOW, REVIEW)
    assert d.action == "order" and "ordered to arrive before" in d.reason, "the next review would be too late to arrive before they leave"
    assert decide(_s(NOW + 15 * DAY, ()), NOW, REVIEW).action == "wait", "without the trip there is time"
    assert decide(_s(NOW + 30 * DAY, (trip,)), NOW, REVIEW).action == "wait", "it lasts until after return: nothing before departure"


def test_too_late_either_way_tells_the_household_and_orders_nothing() -> None:
    trip = (NOW + 2 * DAY, NOW + 9 * DAY)  # a parcel ordered now lands inside, and the slot runs out before return
    d = decide(_s(NOW + 4 * DAY, (trip,)), NOW, REVIEW)
    assert d.action == "notify" and "before the household is back" in d.reason


def test_away_periods_that_miss_the_delivery_change_nothing() -> None:
    past, far = (NOW - 10 * DAY, NOW - 3 * DAY), (NOW + 60 * DAY, NOW + 70 * DAY)
    for p10 in (NOW + 4 * DAY, NOW + 20 * DAY):
        assert decide(_s(p10, (past, far)), NOW, REVIEW).action == decide(_s(p10, ()), NOW, REVIEW).action
