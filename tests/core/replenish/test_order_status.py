"""The order status machine: every (status, fulfilment event) move, the status sets, and the stored values; pure."""

from __future__ import annotations

import json

import pytest

from gateway.protocol.schemas import SCHEMAS
from replenish.ordering import CANCELLABLE, COMMITTED, FINAL, OPEN, FulfilmentEvent, OrderStatus, after_event, takes_events

S, E = OrderStatus, FulfilmentEvent

# Every status that takes events, by every event: the status it moves to, or None (unchanged).
TABLE: dict[tuple[OrderStatus, FulfilmentEvent], OrderStatus | None] = {
    (S.RELEASED, E.ACCEPTED): S.ACCEPTED,
    (S.RELEASED, E.SHIPPED): S.SHIPPED,
    (S.RELEASED, E.DELIVERED): S.DELIVERED,
    (S.RELEASED, E.CANCELLED): S.CANCELLED,
    (S.RELEASED, E.OUT_OF_STOCK): S.OUT_OF_STOCK,
    (S.ACCEPTED, E.ACCEPTED): None,
    (S.ACCEPTED, E.SHIPPED): S.SHIPPED,
    (S.ACCEPTED, E.DELIVERED): S.DELIVERED,
    (S.ACCEPTED, E.CANCELLED): S.CANCELLED,
    (S.ACCEPTED, E.OUT_OF_STOCK): S.OUT_OF_STOCK,
    (S.SHIPPED, E.ACCEPTED): None,
    (S.SHIPPED, E.SHIPPED): None,
    (S.SHIPPED, E.DELIVERED): S.DELIVERED,
    (S.SHIPPED, E.CANCELLED): S.CANCELLED,
    (S.SHIPPED, E.OUT_OF_STOCK): S.OUT_OF_STOCK,
    **{(final, event): None for final in (S.DELIVERED, S.CANCELLED, S.OUT_OF_STOCK) for event in E},
}


def test_the_table_covers_every_status_that_takes_events_by_every_event() -> None:
    assert set(TABLE) == {(s, e) for s in S if takes_events(s) for e in E}


@pytest.mark.parametrize(("status", "event"), sorted(TABLE))
def test_after_event_moves_each_status_as_the_table_says(status: OrderStatus, event: FulfilmentEvent) -> None:
    assert after_event(status, event) == TABLE[(status, event)]


def test_events_only_move_forward_so_a_late_shipped_after_delivered_changes_nothing() -> None:
    assert after_event(S.DELIVERED, E.SHIPPED) is None
    assert after_event(S.SHIPPED, E.ACCEPTED) is None
    # Out of order: delivered arrives first, then the shipped and accepted that preceded it.
    status = S.RELEASED
    for event in (E.DELIVERED, E.SHIPPED, E.ACCEPTED):
        status = after_event(status, event) or status
    assert status == S.DELIVERED


def test_a_repeated_event_is_idempotent() -> None:
    status = after_event(S.RELEASED, E.SHIPPED)
    assert status == S.SHIPPED and after_event(status, E.SHIPPED) is None


@pytest.mark.parametrize("final", [S.DELIVERED, S.CANCELLED, S.OUT_OF_STOCK])
def test_a_final_status_stays_final_whatever_arrives(final: OrderStatus) -> None:
    assert [after_event(final, e) for e in E] == [None] * len(E)


@pytest.mark.parametrize("status", [S.RELEASED, S.ACCEPTED, S.SHIPPED])
def test_cancelled_and_out_of_stock_end_an_order_on_its_way(status: OrderStatus) -> None:
    assert after_event(status, E.CANCELLED) == S.CANCELLED
    assert after_event(status, E.OUT_OF_STOCK) == S.OUT_OF_STOCK


def test_only_a_released_order_takes_events_held_and_awaiting_approval_do_not() -> None:
    assert {s for s in S if not takes_events(s)} == {S.HELD, S.AWAITING_APPROVAL}


def test_the_status_sets() -> None:
    assert OPEN == {S.AWAITING_APPROVAL, S.HELD, S.RELEASED, S.ACCEPTED, S.SHIPPED}
    assert COMMITTED == {S.HELD, S.RELEASED, S.ACCEPTED, S.SHIPPED, S.DELIVERED}
    assert FINAL == {S.DELIVERED, S.CANCELLED, S.OUT_OF_STOCK}
    assert CANCELLABLE == {S.HELD, S.AWAITING_APPROVAL}
    # Every status is either on its way or final, never both.
    assert OPEN | FINAL == set(S) and not OPEN & FINAL


def test_status_and_event_values_are_the_strings_stored_in_the_database() -> None:
    assert [s.value for s in S] == ["awaiting_approval", "held", "released", "accepted", "shipped", "delivered", "cancelled", "out_of_stock"]
    assert [e.value for e in E] == ["accepted", "shipped", "delivered", "cancelled", "out_of_stock"]
    assert S.HELD == "held" and S("out_of_stock") is S.OUT_OF_STOCK and f"{S.AWAITING_APPROVAL}" == "awaiting_approval"
    assert {"held", "released"} <= OPEN  # sets of statuses test plain stored strings too
    assert "delivered" in FINAL and "awaiting_approval" not in COMMITTED


def test_the_orders_schema_lists_exactly_the_order_statuses() -> None:
    schema = json.loads((SCHEMAS / "orders.json").read_text())
    assert schema["properties"]["slots"]["additionalProperties"]["properties"]["status"]["enum"] == [s.value for s in S]


def test_an_unknown_status_or_event_is_refused() -> None:
    with pytest.raises(ValueError):
        OrderStatus("lost")
    with pytest.raises(ValueError):
        FulfilmentEvent("released")  # the gateway releases; a fulfilment system does not
