"""The planner's pass over every chosen slot (with the policy it asks): known answers from plain records; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any


import pytest

from gateway import ForecastView
from gateway.forecasting import ForecastMethod
from replenish.ordering import (
    Budget,
    EndedBy,
    NeedOrders,
    NotNow,
    Offer,
    OrderStatus,
    PlanInputs,
    SlotChoice,
    SlotMode,
    need_key,
    need_orders,
    not_now_after_cancel,
    order_key,
    plan,
    snoozed,
)

NOW = datetime(2026, 11, 2, 8, tzinfo=UTC)
REFILL = datetime(2026, 11, 1, 6, tzinfo=UTC)  # the slot's latest refill seen
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
CANCEL_WINDOW = 24 * HOUR
REVIEW = 6 * HOUR
LEAD = 3 * DAY
# Order when P10 <= now + hold + lead + review: 2026-11-02T08:00 + 24 h + 3 d + 6 h.
DEADLINE = datetime(2026, 11, 6, 14, tzinfo=UTC)
DUE = datetime(2026, 11, 6, 8, tzinfo=UTC)  # a P10 exactly 4.0 days from now: due
EXPLANATION = {"method": "level regression", "rate_per_day": 0.05}


@dataclass(frozen=True, slots=True)
class Forecast:
    """A forecast as the planner reads it (the `ForecastFacts` protocol)."""

    empty_p10: datetime | None
    empty_p50: datetime | None = None
    empty_p90: datetime | None = None
    level_now: float | None = 0.2
    readings_used: int = 48
    measured: bool = True
    step: float = 0.0
    explanation: Mapping[str, Any] = field(default_factory=lambda: dict(EXPLANATION))
    segment_start: datetime | None = REFILL

    def describes(self, segment_start: datetime | None) -> bool:
        return self.segment_start == segment_start


def _choice(device: str = "printer-1", slot: str = "black", household: int = 1, sku: str = "INK-BK", quantity: int = 1, mode: SlotMode = SlotMode.AUTO) -> SlotChoice:
    return SlotChoice(household, device, slot, sku, quantity, mode)


OFFERS = {
    "INK-BK": Offer("INK-BK", 2500, "EUR", "shop", LEAD),
    "INK-C": Offer("INK-C", 2000, "EUR", "shop", LEAD),
}


def _inputs(choices: list[SlotChoice], forecasts: dict[tuple[str, str], Forecast] | None = None, **kw: Any) -> PlanInputs:
    """Every chosen slot owned by its household, with auto_order consent, refilled at REFILL and due."""
    base: dict[str, Any] = dict(
        choices=choices,
        offers=OFFERS,
        budgets={1: Budget(1, 5000, "EUR", 1000), 2: Budget(2, 5000, "EUR", 0)},
        owners={c.device_id: c.household_id for c in choices},
        auto_order={c.device_id: True for c in choices},
        forecasts=forecasts if forecasts is not None else {c.key: Forecast(DUE, DUE + DAY, DUE + 3 * DAY) for c in choices},
        segments={c.key: REFILL for c in choices},
        in_flight=set(),
        needs={},
    )
    base.update(kw)
    return PlanInputs(**base)


def _run(inputs: PlanInputs, cancel_window: timedelta = CANCEL_WINDOW) -> Any:
    return plan(inputs, NOW, cancel_window, REVIEW)


def test_an_auto_slot_due_within_hold_lead_and_review_is_placed_held_until_the_cancel_window_ends() -> None:
    choice = _choice()
    result = _run(_inputs([choice]))
    assert result.notices == ()
    (p,) = result.placements
    assert p.choice == choice and p.offer == OFFERS["INK-BK"]
    assert p.need == "printer-1:black:2026-11-01T06:00:00+00:00"
    assert p.forecast == EXPLANATION
    d = p.decision
    assert (d.action, d.status, d.release_at) == ("order", OrderStatus.HELD, datetime(2026, 11, 3, 8, tzinfo=UTC))
    assert d.reason == "runs out in 4.0 days at the earliest (P10); delivery takes 3.0 days after a 24 h hold"
    assert d.why == {
        "level_now": 0.2,
        "readings_used": 48,
        "empty_p10": "2026-11-06T08:00:00+00:00",
        "empty_p50": "2026-11-07T08:00:00+00:00",
        "empty_p90": "2026-11-09T08:00:00+00:00",
        "lead_time_days": 3.0,
        "hold_hours": 24.0,
        "expected_arrival": "2026-11-06T08:00:00+00:00",
        "review_every_hours": 6.0,
        "order_cost_cents": 2500,
        "spent_this_month_cents": 1000,
        "monthly_budget_cents": 5000,
    }


def test_the_order_deadline_is_inclusive_and_one_second_later_the_slot_waits() -> None:
    choice = _choice()
    at_deadline = _run(_inputs([choice], {choice.key: Forecast(DEADLINE)}))
    assert [p.decision.status for p in at_deadline.placements] == [OrderStatus.HELD]
    later = _run(_inputs([choice], {choice.key: Forecast(DEADLINE + timedelta(seconds=1))}))
    assert later.placements == () and later.notices == ()


def test_approve_mode_waits_for_approval_and_orders_earlier_for_the_day_the_household_needs() -> None:
    # With a 2 h cancel window an auto slot is due by P10 <= 2026-11-05T16:00; one that needs approval
    # is held a day instead, so a P10 of 2026-11-06T08:00 is due for it and not for the auto slot.
    auto, approve = _choice("printer-1"), _choice("printer-2", mode=SlotMode.APPROVE)
    result = _run(_inputs([auto, approve]), cancel_window=2 * HOUR)
    (p,) = result.placements
    assert p.choice == approve
    assert (p.decision.status, p.decision.release_at) == (OrderStatus.AWAITING_APPROVAL, None)
    assert p.decision.reason == "runs out in 4.0 days at the earliest (P10); delivery takes 3.0 days after a 24 h hold; waits for approval"
    assert p.decision.why["expected_arrival"] == "2026-11-06T08:00:00+00:00"


def test_an_order_over_the_monthly_budget_waits_for_approval() -> None:
    choice = _choice(quantity=2)  # 2 x 25.00 on top of 10.00 spent: 60.00 > 50.00
    (p,) = _run(_inputs([choice])).placements
    assert (p.decision.status, p.decision.release_at) == (OrderStatus.AWAITING_APPROVAL, None)
    assert p.decision.reason.endswith("; over the monthly budget, so it waits for approval")
    assert p.decision.why["order_cost_cents"] == 5000


def test_an_order_that_brings_spending_exactly_to_the_budget_is_held() -> None:
    choice = _choice()
    (p,) = _run(_inputs([choice], budgets={1: Budget(1, 5000, "EUR", 2500)})).placements
    assert p.decision.status == OrderStatus.HELD


def test_spending_adds_up_within_a_pass_so_the_second_order_tips_over_the_budget_and_not_another_households() -> None:
    first = _choice("printer-1", "black", household=1, sku="INK-BK")  # 10.00 + 25.00 = 35.00: held
    other = _choice("printer-9", "black", household=2, sku="INK-BK")  # household 2 has spent nothing
    second = _choice("printer-1", "cyan", household=1, sku="INK-C")  # 35.00 + 20.00 = 55.00 > 50.00
    result = _run(_inputs([first, other, second]))
    got = [(p.choice, p.decision.status, p.decision.why["spent_this_month_cents"]) for p in result.placements]
    assert got == [
        (first, OrderStatus.HELD, 1000),
        (other, OrderStatus.HELD, 0),
        (second, OrderStatus.AWAITING_APPROVAL, 3500),
    ]
    # Alone in its pass the second fits (10.00 + 20.00): it is the first one's spending that tips it.
    (alone,) = _run(_inputs([second])).placements
    assert alone.decision.status == OrderStatus.HELD


def test_a_device_that_changed_hands_plans_nothing_from_its_old_households_settings() -> None:
    auto, notify = _choice("printer-1"), _choice("fridge-1", "milk", mode=SlotMode.NOTIFY)
    moved = _run(_inputs([auto, notify], owners={"printer-1": 2, "fridge-1": 2}))
    assert moved.placements == () and moved.notices == ()
    unclaimed = _run(_inputs([auto, notify], owners={}))
    assert unclaimed.placements == () and unclaimed.notices == ()


def test_a_slot_without_an_offer_or_a_household_budget_plans_nothing() -> None:
    assert _run(_inputs([_choice(sku="GONE")])).placements == ()
    assert _run(_inputs([_choice()], budgets={})).placements == ()


def test_a_forecast_made_before_the_latest_refill_is_ignored() -> None:
    choice = _choice()
    before_any_refill = Forecast(DUE, segment_start=None)
    earlier_refill = Forecast(DUE, segment_start=REFILL - 20 * DAY)
    for stale in (before_any_refill, earlier_refill):
        assert _run(_inputs([choice], {choice.key: stale})).placements == ()
    # The same low forecast, made after the refill, orders.
    (p,) = _run(_inputs([choice], {choice.key: Forecast(DUE)})).placements
    assert p.decision.status == OrderStatus.HELD


def test_a_gateway_forecast_view_is_read_against_the_slots_segment() -> None:
    choice = _choice()
    view = ForecastView(
        device_id="printer-1", slot_id="black", computed_at=NOW, method=ForecastMethod.LEVEL, level_now=0.2,
        rate_per_day=0.05, empty_p10=DUE, empty_p50=DUE + DAY, empty_p90=DUE + 3 * DAY, confidence=0.8,
        readings_used=48, step=0.0, prior_weight=0.0, segment_start=REFILL, explanation={"method": "level regression"},
    )
    (p,) = _run(_inputs([choice], {choice.key: view})).placements
    assert p.forecast == {"method": "level regression"} and p.decision.status == OrderStatus.HELD
    stale = replace(view, segment_start=None)  # made before the refill of 2026-11-01T06:00
    assert _run(_inputs([choice], {choice.key: stale})).placements == ()


def test_a_slot_with_an_order_in_flight_places_nothing() -> None:
    choice = _choice()
    result = _run(_inputs([choice], in_flight={choice.key}))
    assert result.placements == () and result.notices == ()


def test_a_need_whose_order_is_live_or_delivered_places_nothing_but_an_earlier_need_does_not_block() -> None:
    choice = _choice()
    this_need = need_key("printer-1", "black", REFILL)
    for status in ("held", "awaiting_approval", "shipped", "delivered"):  # a delivered spare not yet installed is stock
        assert _run(_inputs([choice], needs=need_orders([(this_need, status, "INK-BK", None)]))).placements == (), status
    earlier = need_orders([(need_key("printer-1", "black", REFILL - 20 * DAY), "delivered", "INK-BK", None), (need_key("printer-1", "black", None), "delivered", "INK-BK", None)])
    (p,) = _run(_inputs([choice], needs=earlier)).placements
    assert (p.need, p.key) == (this_need, this_need), "the first order for a need is keyed by the need itself"


def test_the_orders_of_a_need_sum_up_to_attempts_liveness_and_the_products_refused() -> None:
    rows = [
        ("a", "cancelled", "INK-BK", "household"),
        ("a", "out_of_stock", "INK-BK", "fulfilment"),
        ("a", "cancelled", "INK-C", "fulfilment"),
        ("b", "cancelled", "INK-BK", "consent"),
        ("b", "held", "INK-BK", None),
    ]
    assert need_orders(rows) == {"a": NeedOrders(3, False, frozenset({"INK-BK", "INK-C"})), "b": NeedOrders(2, True, frozenset())}
    assert [order_key("n", NeedOrders(k, False, frozenset())) for k in (0, 1, 2)] == ["n", "n#2", "n#3"]


def test_a_cancel_ends_the_order_not_the_need_the_slot_is_planned_again_after_not_now() -> None:
    choice = _choice()
    need = need_key("printer-1", "black", REFILL)
    cancelled = need_orders([(need, "cancelled", "INK-BK", EndedBy.HOUSEHOLD)])
    not_now = not_now_after_cancel(NOW - DAY, level=0.2, step=0.1)
    assert not_now == NotNow(NOW + 2 * DAY, 0.1)
    snoozing = replace(choice, not_now=not_now)
    assert _run(_inputs([snoozing], needs=cancelled)).placements == (), "not now: three days, or until another step is gone"
    lower = {choice.key: Forecast(DUE, DUE + DAY, DUE + 3 * DAY, level_now=0.1)}
    (p,) = _run(_inputs([snoozing], lower, needs=cancelled)).placements
    assert (p.need, p.key) == (need, need + "#2"), "the level fell another step: the need is ordered again, as its second attempt"
    (p,) = plan(_inputs([snoozing], needs=cancelled), NOW + 2 * DAY, CANCEL_WINDOW, REVIEW).placements
    assert p.key == need + "#2", "three days on, the slot is planned again"


def test_not_now_holds_until_its_date_or_a_level_at_or_below_its_floor() -> None:
    hold = NotNow(NOW + DAY, 0.3)
    assert snoozed(hold, 0.31, NOW) and not snoozed(hold, 0.3, NOW) and not snoozed(hold, 0.5, NOW + DAY)
    assert snoozed(NotNow(NOW + DAY, None), 0.0, NOW), "without a floor only the date counts"
    assert snoozed(hold, None, NOW) and not snoozed(None, 0.9, NOW)
    assert not_now_after_cancel(NOW, None, 0.1) == NotNow(NOW + 3 * DAY, None)
    assert not_now_after_cancel(NOW, 0.55, 0.01).below == pytest.approx(0.45), "finer than 10 % steps: another 10 %"
    assert not_now_after_cancel(NOW, 0.1, 0.25).below == 0.0


def test_an_out_of_stock_need_is_ordered_again_from_the_next_substitute_or_told_when_none_is_left() -> None:
    choice = replace(_choice(), substitutes=("INK-C",))
    need = need_key("printer-1", "black", REFILL)
    refused = need_orders([(need, "out_of_stock", "INK-BK", EndedBy.FULFILMENT)])
    (p,) = _run(_inputs([choice], needs=refused)).placements
    assert (p.offer.sku, p.key) == ("INK-C", need + "#2")
    both = need_orders([(need, "out_of_stock", "INK-BK", EndedBy.FULFILMENT), (need, "cancelled", "INK-C", EndedBy.FULFILMENT)])
    result = _run(_inputs([choice], needs=both))
    assert result.placements == () and [k for k, _ in result.notices] == [choice.key]
    assert "no substitute left" in result.notices[0][1]
    consent_gone = need_orders([(need, "cancelled", "INK-BK", EndedBy.CONSENT)])
    (p,) = _run(_inputs([choice], needs=consent_gone)).placements
    assert p.offer.sku == "INK-BK", "an order cancelled for consent refuses no product: consent given again, it is ordered again"


def test_a_product_priced_in_another_currency_than_the_budget_is_not_ordered_and_the_household_is_told() -> None:
    choice = replace(_choice(), substitutes=("INK-C",))
    dollars = {**OFFERS, "INK-BK": Offer("INK-BK", 2500, "USD", "shop", LEAD)}
    (p,) = _run(_inputs([choice], offers=dollars)).placements
    assert p.offer.sku == "INK-C", "the first substitute in the budget's currency"
    result = _run(_inputs([_choice()], offers=dollars))
    assert result.placements == () and result.notices == ((("printer-1", "black"), "INK-BK is priced in USD, and this household's budget is in EUR"),)


def test_a_household_with_its_own_cancel_window_holds_its_auto_orders_that_long() -> None:
    own = {1: Budget(1, 5000, "EUR", 1000, cancel_window=2 * HOUR), 2: Budget(2, 5000, "EUR", 0)}
    soon = NOW + LEAD + 4 * HOUR  # due with a 2 h hold: 2 h + 3 d + 6 h review is past it
    (p,) = _run(_inputs([_choice()], {("printer-1", "black"): Forecast(soon, soon + DAY, soon + 3 * DAY)}, budgets=own)).placements
    assert (p.decision.status, p.decision.release_at) == (OrderStatus.HELD, NOW + 2 * HOUR)
    (q,) = _run(_inputs([_choice(household=2, device="printer-2")])).placements
    assert q.decision.release_at == NOW + CANCEL_WINDOW, "without one, the service's"


def test_a_crash_between_deciding_and_committing_places_the_same_key_again() -> None:
    choice = _choice()
    need = need_key("printer-1", "black", REFILL)
    for needs in ({}, need_orders([(need, "cancelled", "INK-BK", EndedBy.FULFILMENT)])):
        first, again = _run(_inputs([choice], needs=needs)).placements, _run(_inputs([choice], needs=needs)).placements
        assert [p.key for p in first] == [p.key for p in again], "two passes over the same records derive the same key: the database keeps one"


def test_a_notify_slot_yields_a_notice_not_a_placement_even_without_auto_order_consent() -> None:
    choice = _choice("fridge-1", "milk", mode=SlotMode.NOTIFY)
    result = _run(_inputs([choice], auto_order={}))
    assert result.placements == ()
    assert result.notices == ((("fridge-1", "milk"), "runs out in 4.0 days at the earliest (P10); delivery takes 3.0 days after a 24 h hold"),)
    not_due = _run(_inputs([choice], {choice.key: Forecast(DEADLINE + DAY)}))
    assert not_due.notices == () and not_due.placements == ()


def test_without_auto_order_consent_nothing_is_placed() -> None:
    auto, approve = _choice("printer-1"), _choice("printer-2", mode=SlotMode.APPROVE)
    for consent in ({}, {"printer-1": False, "printer-2": False}):
        result = _run(_inputs([auto, approve], auto_order=consent))
        assert result.placements == () and result.notices == ()
    # Consent is per device: the other device still orders.
    (p,) = _run(_inputs([auto, approve], auto_order={"printer-2": True})).placements
    assert p.choice == approve


def test_a_slot_without_a_forecast_places_nothing() -> None:
    choice = _choice()
    assert _run(_inputs([choice], {})).placements == ()
    assert _run(_inputs([choice], {choice.key: Forecast(None)})).placements == ()


def test_need_key_is_stable_and_names_the_refill_segment_or_first_before_any_refill() -> None:
    assert need_key("fridge-1", "milk", None) == "fridge-1:milk:first"
    assert need_key("fridge-1", "milk", REFILL) == "fridge-1:milk:2026-11-01T06:00:00+00:00"
    assert need_key("fridge-1", "milk", REFILL) == need_key("fridge-1", "milk", datetime(2026, 11, 1, 6, tzinfo=UTC))
    keys = {need_key("fridge-1", "milk", s) for s in (None, REFILL, REFILL + DAY)}
    assert len(keys) == 3
    assert need_key("fridge-1", "milk", None) != need_key("fridge-1", "eggs", None) != need_key("fridge-2", "eggs", None)


def test_placements_follow_the_order_of_the_choices() -> None:
    a, b, c = _choice("p-a"), _choice("p-b", household=2), _choice("p-c", household=2, sku="INK-C")
    assert [p.choice for p in _run(_inputs([c, a, b])).placements] == [c, a, b]


def test_an_order_waiting_for_approval_does_not_count_against_the_budget_within_a_pass_as_across_passes() -> None:
    budgets = {1: Budget(1, 3000, "EUR", 0)}
    approve = _choice("printer-1", "black", mode=SlotMode.APPROVE, sku="INK-BK")  # 25.00, waits for approval
    auto = _choice("printer-1", "cyan", sku="INK-C")  # 20.00: within the 30.00 budget on its own
    # The next pass: the approve order waits (in flight), and its 25.00 is not committed money.
    later = _run(_inputs([approve, auto], budgets=budgets, in_flight={approve.key}))
    assert [p.decision.status for p in later.placements] == [OrderStatus.HELD]
    # Both due in the same pass: the auto order should be held just the same.
    same = _run(_inputs([approve, auto], budgets=budgets))
    assert [p.decision.status for p in same.placements] == [OrderStatus.AWAITING_APPROVAL, OrderStatus.HELD]
