"""The message bus: each event to the handlers of its type, in order; one handler's failure stops no other."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from replenish.events import ConsentChanged, MessageBus, OrderChanged

NOW = datetime(2026, 11, 2, 8, tzinfo=UTC)


def test_each_event_reaches_the_handlers_of_its_type_in_the_order_they_subscribed() -> None:
    bus, seen = MessageBus(), []
    bus.subscribe(OrderChanged, lambda e: seen.append(("first", e.order_id)))
    bus.subscribe(ConsentChanged, lambda e: seen.append(("consent", e.device_id)))
    bus.subscribe(OrderChanged, lambda e: seen.append(("second", e.order_id)))
    bus.publish(OrderChanged("o-1", "d", "s", "held", None, NOW), ConsentChanged(1, "d", "auto_order", False, NOW), OrderChanged("o-2", "d", "s", "cancelled", "household", NOW))
    assert seen == [("first", "o-1"), ("second", "o-1"), ("consent", "d"), ("first", "o-2"), ("second", "o-2")]
    MessageBus().publish(OrderChanged("o-3", "d", "s", "held", None, NOW))  # nobody listening: nothing happens


def test_a_failing_handler_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    bus, seen = MessageBus(), []

    def broken(_e: OrderChanged) -> None:
        raise ConnectionError("broker away")

    bus.subscribe(OrderChanged, broken)
    bus.subscribe(OrderChanged, lambda e: seen.append(e.order_id))
    with caplog.at_level(logging.ERROR, logger="replenish.events"):
        bus.publish(OrderChanged("o-1", "d", "s", "held", None, NOW))
    assert seen == ["o-1"]
    assert "handling OrderChanged" in caplog.text and "broker away" in caplog.text
