"""The pure ordering policy, and webhook signatures checked by the standardwebhooks package."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

from replenish.fulfilment import new_secret, sign_headers
from replenish.ordering import SlotSituation, decide

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def _s(**kw: object) -> SlotSituation:
    base: dict[str, object] = dict(
        device_id="d", slot_id="black", mode="auto", auto_order_consent=True, open_order=False,
        empty_p10=NOW + 5 * DAY, empty_p50=NOW + 7 * DAY, empty_p90=NOW + 10 * DAY, level_now=0.2, readings_used=48,
        lead_time=4 * DAY, cancel_window=DAY, order_cost_cents=1500, spent_this_month_cents=0,
        monthly_budget_cents=5000,
    )
    base.update(kw)
    return SlotSituation(**base)  # type: ignore[arg-type]


def test_orders_when_waiting_would_be_too_late_and_holds_for_the_cancel_window() -> None:
    d = decide(_s(), NOW, timedelta(hours=6))
    assert (d.action, d.status, d.release_at) == ("order", "held", NOW + DAY)
    assert "P10" in d.reason and d.why["lead_time_days"] == 4


def test_waits_when_there_is_time() -> None:
    assert decide(_s(empty_p10=NOW + 20 * DAY), NOW, timedelta(hours=6)).action == "wait"


def test_no_consent_open_order_or_forecast_means_no_order() -> None:
    assert decide(_s(auto_order_consent=False), NOW, DAY).action == "wait"
    assert decide(_s(open_order=True), NOW, DAY).action == "wait"
    assert decide(_s(empty_p10=None), NOW, DAY).action == "wait"


def test_a_forecast_from_few_readings_only_counts_once_the_level_is_low() -> None:
    assert decide(_s(readings_used=3, level_now=0.9, empty_p10=NOW), NOW, DAY).action == "wait"
    assert decide(_s(readings_used=3, level_now=0.05, empty_p10=NOW), NOW, DAY).action == "order"


def test_a_level_that_never_moved_orders_only_on_its_last_step() -> None:
    # A full cartridge reporting 100 % for days: the bound's worst case must not buy another one.
    assert decide(_s(use_seen=False, step=0.25, level_now=1.0, empty_p10=NOW + 2 * DAY), NOW, DAY).action == "wait"
    assert decide(_s(use_seen=False, step=0.0, level_now=0.6, empty_p10=NOW + 2 * DAY), NOW, DAY).action == "wait"
    # On the last of four bars, the next step is empty: order in time.
    assert decide(_s(use_seen=False, step=0.25, level_now=0.25, empty_p10=NOW + 2 * DAY), NOW, DAY).action == "order"


def test_over_budget_and_approve_mode_wait_for_approval_and_notify_only_tells() -> None:
    assert decide(_s(spent_this_month_cents=4000), NOW, DAY).status == "awaiting_approval"
    assert decide(_s(mode="approve"), NOW, DAY).status == "awaiting_approval"
    assert decide(_s(mode="notify", auto_order_consent=False), NOW, DAY).action == "notify"


def test_signature_verifies_with_the_standardwebhooks_package() -> None:
    secret = new_secret()
    body = json.dumps({"type": "order.released"}).encode()
    headers = sign_headers(secret, "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {"type": "order.released"}


def test_the_webhook_states_a_unit_price_in_the_currency_of_the_order() -> None:
    from datetime import UTC, datetime

    from replenish.fulfilment.payload import order_document
    from replenish.storage import Order

    now = datetime(2026, 11, 2, tzinfo=UTC)
    base = {"id": "o-1", "idempotency_key": "k", "need": "k", "household_id": 1, "device_id": "d", "slot_id": "s", "fulfiller_id": "f", "sku": "S", "quantity": 1, "status": "released", "reason": {}, "created_at": now, "updated_at": now}
    prices = [order_document(Order(**base, unit_price_cents=2499, currency=c), None)["items"][0]["unit_price"] for c in ("EUR", "JPY")]
    assert prices == [24.99, 2499.0], "2499 yen is 2499 yen, not 24.99"
