"""The composition root's promises: no schema touched by a constructor, probes on every process, structured logs,
settings that refuse bad values, and consent withdrawal taking effect at once (SPEC 4, 6)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session

from gateway import MqttTarget
from replenish.bootstrap import Service
from replenish.households import CONSENT_WORDING, CONSENT_WORDING_VERSION, ConsentScope
from replenish.ordering import OrderStatus
from replenish.settings import Settings
from replenish.storage import Order, Product
from tests.helpers import ROOT

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_constructing_a_service_touches_no_schema_and_migrate_is_a_step_of_its_own(sqlite_url: str) -> None:
    service = Service(Settings(env="test", database_url=sqlite_url))
    assert sa.inspect(service.engine).get_table_names() == [], "a constructor migrated"
    service.migrate()
    assert {"gw_readings", "orders", "alembic_version"} <= set(sa.inspect(service.engine).get_table_names())
    service.stop()


def test_a_gateway_only_process_answers_healthz_and_metrics(sqlite_url: str, mqtt_target: MqttTarget) -> None:
    settings = Settings(
        env="test", database_url=sqlite_url, mqtt_url=mqtt_target.url, web_port=0, gateway_client_id="gw-" + uuid.uuid4().hex[:8]
    )
    service = Service(settings, ingest=True, serve=False)
    service.migrate()
    service.start()
    try:
        with httpx.Client(base_url=service.web_url) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            metrics = http.get("/metrics").text
            for family in ("ingest_seconds", "ingest_lag_seconds", "rejected_total", "quarantined_total", "over_budget_total", "clock_corrections_total"):
                assert f"replenish_gateway_{family}" in metrics, family
            lag = next(line for line in metrics.splitlines() if line.startswith("replenish_gateway_ingest_lag_seconds "))
            assert float(lag.split()[1]) < 5.0, "nothing waits: the lag is small"
            assert http.get("/login").status_code == 404, "an ingest worker serves no pages"
    finally:
        service.stop()


def test_separate_roles_need_a_shared_broker(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="shared broker"):
        Service(Settings(env="test", database_url=sqlite_url), ingest=True, serve=False)


@pytest.mark.parametrize("namespace", ["a/+/b", "#", "$SYS", "a//b", "a/b/c/d/e", "x" * 65])
def test_settings_refuse_a_topic_namespace_that_is_not_one(namespace: str) -> None:
    with pytest.raises(ValidationError, match="namespace"):
        Settings(mqtt_namespace=namespace)


def test_json_logs_are_one_object_a_line_with_the_exception() -> None:
    script = (
        "import logging; from replenish.logs import configure_logging; configure_logging('json', 'INFO'); "
        "log = logging.getLogger('replenish.test'); log.info('order %s released', 'o-1'); log.debug('hidden')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('tick failed')"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(d["level"], d["logger"], d["event"]) for d in lines] == [("info", "replenish.test", "order o-1 released"), ("error", "replenish.test", "tick failed")]
    assert "ZeroDivisionError" in lines[1]["exception"] and all(d["timestamp"].endswith("Z") for d in lines)


def _order(service: Service, household_id: int, device_id: str, status: OrderStatus, n: int) -> str:
    order = Order(
        id=str(uuid.uuid4()), idempotency_key=f"{device_id}:slot-{n}:first", need=f"{device_id}:slot-{n}:first", household_id=household_id, device_id=device_id, slot_id=f"slot-{n}",
        fulfiller_id="f", sku="SKU-1", quantity=1, unit_price_cents=999, currency="EUR", status=status.value, reason={},
        created_at=NOW, release_at=NOW + timedelta(hours=24) if status is OrderStatus.HELD else None, updated_at=NOW,
    )  # fmt: skip
    with Session(service.engine, expire_on_commit=False) as s:
        s.add(order)
        s.commit()
    return order.id


def test_withdrawing_auto_order_cancels_the_orders_still_waiting_at_once(sqlite_url: str) -> None:
    service = Service(Settings(env="test", database_url=sqlite_url, clock_start=NOW))
    service.migrate()
    try:
        assert service.provisioner is not None
        (issued,) = service.provisioner.provision(["kitchen-printer"])
        hh = service.households.create("c@example.org", "C", "long enough password")
        assert hh.id is not None
        service.households.claim(hh.id, "kitchen-printer", issued.claim_code)
        for scope in ConsentScope:
            service.consents.set(hh.id, "kitchen-printer", scope, True, "c@example.org")
        service.fulfillers.add("f", "F", "http://127.0.0.1:9/hook")
        service.catalog.add_product(Product(sku="SKU-1", name="Ink", consumable="ink.black", models=["m"], unit_price_cents=999, fulfiller_id="f"))
        held = _order(service, hh.id, "kitchen-printer", OrderStatus.HELD, 1)
        waiting = _order(service, hh.id, "kitchen-printer", OrderStatus.AWAITING_APPROVAL, 2)
        shipped = _order(service, hh.id, "kitchen-printer", OrderStatus.SHIPPED, 3)

        service.consents.set(hh.id, "kitchen-printer", ConsentScope.TELEMETRY, False, "c@example.org")
        assert service.queries.get(held).status == OrderStatus.HELD  # type: ignore[union-attr]
        assert not service.gateway.registry.devices(["kitchen-printer"])[0].store_readings

        service.consents.set(hh.id, "kitchen-printer", ConsentScope.AUTO_ORDER, False, "c@example.org")
        statuses = {o: service.queries.get(o).status for o in (held, waiting, shipped)}  # type: ignore[union-attr]
        assert statuses == {held: "cancelled", waiting: "cancelled", shipped: "shipped"}, "only what fulfilment has not got is cancelled"
        history = [(r.scope, r.granted, r.wording_version, r.wording_text) for r in service.consents.history(hh.id)]
        assert history[-2:] == [
            ("telemetry", False, CONSENT_WORDING_VERSION, CONSENT_WORDING[ConsentScope.TELEMETRY]),
            ("auto_order", False, CONSENT_WORDING_VERSION, CONSENT_WORDING[ConsentScope.AUTO_ORDER]),
        ], "each record keeps the words it was given with"
    finally:
        service.stop()
