"""Which set-up slots ran out and which came back: known answers (the rule behind the stock-out log lines)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from replenish.ordering import StockOutChanges, stock_out_changes

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
H = timedelta(hours=1)
A, B, C = ("p", "black"), ("p", "cyan"), ("f", "milk")


def test_a_slot_at_zero_begins_a_stock_out_once_and_ends_it_when_it_reports_a_level() -> None:
    first = stock_out_changes({}, {A: 0.0, B: 0.4, C: None}, T0)
    assert first == StockOutChanges((A,), (), {A: T0})
    again = stock_out_changes(first.out, {A: 0.0, B: 0.3, C: None}, T0 + H)
    assert again == StockOutChanges((), (), {A: T0}), "still out: no second line, the same start"
    refilled = stock_out_changes(again.out, {A: 1.0, B: 0.3, C: 0.0}, T0 + 5 * H)
    assert refilled == StockOutChanges((C,), ((A, T0),), {C: T0 + 5 * H})


def test_a_slot_without_a_level_keeps_its_state_and_one_no_longer_set_up_ends() -> None:
    out = {A: T0, B: T0 + H}
    changes = stock_out_changes(out, {A: None}, T0 + 2 * H)
    assert changes == StockOutChanges((), ((B, T0 + H),), {A: T0})
