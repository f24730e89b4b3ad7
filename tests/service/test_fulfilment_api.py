"""The fulfilment REST API (SPEC 5): a system sees only its own released orders, and malformed input answers 4xx, never 5xx.

tests/infra/test_fulfilment_api_on_postgres.py runs these again on PostgreSQL, which refuses NUL in text.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import hypothesis.strategies as st
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlmodel import Session

from replenish.bootstrap import Service
from replenish.households import CONSENT_WORDING, CONSENT_WORDING_VERSION, ConsentScope
from replenish.settings import Settings
from replenish.storage import ConsentRecord, Order
from replenish.web import Pages, create_app

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
API = "/api/fulfilment/v1"
# Every status an order released to a fulfilment system can reach.
VISIBLE = ("released", "accepted", "shipped", "delivered", "cancelled", "out_of_stock")


@dataclass
class World:
    """A service not started, its app, two fulfilment systems' API keys and orders by what became of them."""

    service: Service
    app: FastAPI
    acme: dict[str, str]  # Authorization headers
    other: dict[str, str]
    orders: dict[str, str]  # what became of it -> order id

    def client(self) -> httpx.AsyncClient:
        """An in-process client; an exception in the app answers 500, as it would over the wire."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False), base_url="http://test")


def _order(s: Session, household_id: int, fulfiller_id: str, status: str, n: int) -> str:
    key = f"need-{n}-{uuid.uuid4().hex}"
    order = Order(
        id=str(uuid.uuid4()),
        idempotency_key=key,
        need=key,
        household_id=household_id,
        device_id="kitchen-printer",
        slot_id=f"slot-{n}",
        fulfiller_id=fulfiller_id,
        sku="HP67XL-BK",
        quantity=1,
        unit_price_cents=2499,
        currency="EUR",
        status=status,
        reason={"summary": "runs out in 5 days"},
        created_at=NOW,
        release_at=NOW,
        updated_at=NOW,
    )
    s.add(order)
    return order.id


@contextmanager
def _world(db_url: str) -> Iterator[World]:
    """Orders of `acme` in every status, each reached the way the product reaches it, and one of `other`'s."""
    service = Service(Settings(env="test", database_url=db_url, admin_token="op-token", clock_start=NOW, clock_speed=1.0))
    try:
        service.migrate()
        pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, service.clock)
        app = create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", service.settings.admin_token)
        acme = service.fulfillers.add("acme", "Acme", "http://127.0.0.1:9/webhooks").api_key
        other = service.fulfillers.add("other", "Other", "http://127.0.0.1:9/webhooks").api_key
        household = service.households.create("a@example.org", "A", "long enough password", address={"city": "Utrecht"})
        assert household.id is not None
        start = {
            "held": ("acme", "held"),
            "awaiting_approval": ("acme", "awaiting_approval"),
            "cancelled_while_held": ("acme", "held"),
            **{status: ("acme", "awaiting_approval") for status in VISIBLE},
            "other_released": ("other", "awaiting_approval"),
        }
        with Session(service.engine) as s:
            orders = {name: _order(s, household.id, fid, status, n) for n, (name, (fid, status)) in enumerate(start.items())}
            # Approval re-checks the device's auto_order consent (the device is not claimed here: its record alone).
            words = CONSENT_WORDING[ConsentScope.AUTO_ORDER]
            s.add(ConsentRecord(household_id=household.id, device_id="kitchen-printer", scope="auto_order", granted=True, actor="a@example.org", wording_version=CONSENT_WORDING_VERSION, wording_text=words, at=NOW))
            s.commit()
        service.actions.cancel(household.id, orders["cancelled_while_held"], NOW)
        for name in (*VISIBLE, "other_released"):
            service.actions.approve(household.id, orders[name], NOW)  # released, with its webhook
        for event in ("accepted", "shipped", "delivered", "cancelled", "out_of_stock"):
            service.events.apply("acme", orders[event], {"type": event, "event_id": f"setup-{event}"}, NOW)
        yield World(service, app, {"Authorization": f"Bearer {acme}"}, {"Authorization": f"Bearer {other}"}, orders)
    finally:
        service.stop()


async def _listed(http: httpx.AsyncClient, headers: dict[str, str], status: str | None) -> tuple[int, Any]:
    r = await http.get(f"{API}/orders", headers=headers, params=None if status is None else {"status": status})
    if r.status_code != 200:
        return r.status_code, r.json()["detail"]
    return 200, sorted((o["id"], o["status"]) for o in r.json()["orders"])


async def test_a_fulfilment_system_sees_only_its_own_orders_once_released(db_url: str) -> None:
    with _world(db_url) as w:
        async with w.client() as http:
            o = w.orders
            every = ",".join(VISIBLE)
            assert await _listed(http, w.acme, None) == (200, [(o["released"], "released")])
            assert await _listed(http, w.acme, every) == (200, sorted((o[s], s) for s in VISIBLE))
            # Cancelled by the household while held: never released, so never visible, not even as cancelled.
            assert await _listed(http, w.acme, "cancelled") == (200, [(o["cancelled"], "cancelled")])
            assert await _listed(http, w.acme, " shipped , delivered ") == (200, sorted([(o["shipped"], "shipped"), (o["delivered"], "delivered")]))
            assert await _listed(http, w.other, every) == (200, [(o["other_released"], "released")])

            for status in ("held", "awaiting_approval", "held,released"):
                code, detail = await _listed(http, w.acme, status)
                assert code == 422 and "not released" in detail, (status, code, detail)
            for status in ("bogus", "released,", "", "RELEASED", "released\x00", "x" * 5000):
                code, detail = await _listed(http, w.acme, status)
                assert code == 422 and "unknown order status" in detail, (status, code, detail)

            for headers in ({}, {"Authorization": "Bearer rk_nope"}, {"Authorization": "Basic YTpi"}):
                assert (await http.get(f"{API}/orders", headers=headers)).status_code == 401

            async def post(headers: dict[str, str], name: str, event: dict[str, Any]) -> tuple[int, Any]:
                r = await http.post(f"{API}/orders/{o[name]}/events", headers=headers, json=event)
                return r.status_code, r.json()

            # Events: only on the caller's own released orders; the others are as if they did not exist.
            for name in ("held", "awaiting_approval", "cancelled_while_held", "other_released"):
                code, body = await post(w.acme, name, {"type": "accepted", "event_id": "e-1"})
                assert (code, body["detail"]) == (404, "no such order for this fulfilment system"), name
            assert (await post(w.other, "released", {"type": "accepted", "event_id": "e-1"}))[0] == 404

            shipped = {"type": "shipped", "event_id": "ship-1", "eta": "2026-11-26T12:00:00Z", "tracking": "TRK 123/45"}
            code, body = await post(w.acme, "released", shipped)
            assert (code, body["applied"], body["order"]["status"], body["order"]["tracking"]) == (200, True, "shipped", "TRK 123/45")
            assert body["order"]["expected_delivery"] == "2026-11-26T12:00:00+00:00"
            assert (await post(w.acme, "released", shipped))[1]["applied"] is False  # the same event again
            late = {"type": "accepted", "event_id": "late"}
            assert (await post(w.acme, "released", late))[1]["order"]["status"] == "shipped"  # out of order: no step back
            assert (await post(w.acme, "delivered", {"type": "cancelled", "event_id": "late"}))[1]["order"]["status"] == "delivered"  # final


def _malformed_cases(order_id: str) -> dict[str, tuple[str, str, bytes | None]]:
    """name -> (path and query as sent, the reason's expected fragment, the raw body to POST or None to GET)."""
    path = f"{API}/orders/{order_id}/events"
    ok = {"type": "accepted", "event_id": "e-1"}

    def body(**fields: Any) -> bytes:
        return json.dumps({**ok, **fields}).encode()  # ensure_ascii: a lone surrogate travels as \ud800

    return {
        "not json": (path, "JSON object", b"{nope"),
        "empty": (path, "JSON object", b""),
        "not an object": (path, "JSON object", b"[1, 2]"),
        "a string": (path, "JSON object", b'"accepted"'),
        "not utf-8": (path, "JSON object", b'{"type": "\xc3(", "event_id": "e"}'),
        "NaN": (path, "NaN", b'{"type": "accepted", "event_id": "e", "n": NaN}'),
        "too deep for json": (path, "JSON object", b"[" * 30000 + b"]" * 30000),
        "nested too deep": (path, "nested", body(x=json.loads("[" * 20 + "]" * 20))),
        "too large": (path, "64 KiB", body(pad="x" * 70000)),
        "type missing": (path, "type", json.dumps({"event_id": "e"}).encode()),
        "type unknown": (path, "type", body(type="lost")),
        "type not a string": (path, "type", body(type=["accepted"])),
        "event_id missing": (path, "event_id", json.dumps({"type": "accepted"}).encode()),
        "event_id empty": (path, "event_id", body(event_id="")),
        "event_id too long": (path, "event_id", body(event_id="e" * 129)),
        "event_id a number": (path, "event_id", body(event_id=7)),
        "event_id NUL": (path, "event_id", body(event_id="e\x00")),
        "event_id surrogate": (path, "event_id", body(event_id="e\ud800")),
        "event_id newline": (path, "event_id", body(event_id="e\n1")),
        "at not a time": (path, "at", body(at="yesterday")),
        "at a number": (path, "at", body(at=1764000000)),
        "at without offset": (path, "at", body(at="2026-11-23T12:00:00")),
        "at NUL": (path, "at", body(at="2026-11-23T12:00:00Z\x00")),
        "at too long": (path, "at", body(at="2026-11-23T12:00:00" + "0" * 200 + "Z")),
        "eta not a time": (path, "eta", body(eta="soon")),
        "eta surrogate": (path, "eta", body(eta="2026-11-26\udfff")),
        "tracking a number": (path, "tracking", body(tracking=12345)),
        "tracking too long": (path, "tracking", body(tracking="T" * 129)),
        "tracking NUL": (path, "tracking", body(tracking="TRK\x00123")),
        "tracking surrogate": (path, "tracking", body(tracking="TRK\ud800")),
        "tracking escape": (path, "tracking", body(tracking="TRK\x1b[31m")),
        "extra field NUL": (path, "note", body(note="left at\x00 the door")),
        "extra key NUL": (path, "key", body(**{"no\x00te": "x"})),
        "extra field infinite": (path, "big", b'{"type": "accepted", "event_id": "e", "big": 1e999}'),
        "order id too long": (f"{API}/orders/{'a' * 37}/events", "order id", body()),
        "order id characters": (f"{API}/orders/a$b/events", "order id", body()),
        "order id NUL": (f"{API}/orders/a%00b/events", "order id", body()),
        "order id non-ascii": (f"{API}/orders/%C3%A9t%C3%A9/events", "order id", body()),
        "order id newline": (f"{API}/orders/abc%0A/events", "order id", body()),
        "order id surrogate": (f"{API}/orders/a%ED%A0%80/events", "order id", body()),
        "order id unknown": (f"{API}/orders/{uuid.uuid4()}/events", "no such order", body()),
        "status unknown": (f"{API}/orders?status=lost", "unknown order status", None),
        "status empty": (f"{API}/orders?status=", "unknown order status", None),
        "status NUL": (f"{API}/orders?status=released%00", "unknown order status", None),
        "status surrogate": (f"{API}/orders?status=released%ED%A0%80", "unknown order status", None),
        "status not utf-8": (f"{API}/orders?status=released%FF", "unknown order status", None),
        "status held": (f"{API}/orders?status=held", "not released", None),
    }


EXPECTED = {
    "too large": 413,
    "order id unknown": 404,
}


async def test_every_malformed_field_answers_4xx_with_its_reason(db_url: str) -> None:
    with _world(db_url) as w:
        order_id = w.orders["released"]
        cases = _malformed_cases(order_id)
        got, want = {}, {}
        async with w.client() as http:
            for name, (path, fragment, raw) in cases.items():
                if raw is None:
                    r = await http.get(path, headers=w.acme)
                else:
                    r = await http.post(path, headers={**w.acme, "Content-Type": "application/json"}, content=raw)
                detail = r.json().get("detail") if r.headers.get("content-type") == "application/json" else r.text
                got[name] = (r.status_code, isinstance(detail, str) and fragment in detail, detail)
                want[name] = (EXPECTED.get(name, 422), True, detail)

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size is counted as it arrives
                for _ in range(70):
                    yield b" " * 1024

            r = await http.post(f"{API}/orders/{order_id}/events", headers=w.acme, content=chunks())
            got["too large, chunked"] = (r.status_code, r.json()["detail"])
            want["too large, chunked"] = (413, "the body must be at most 64 KiB")
        assert got == want
        # Nothing of it reached the order.
        order = w.service.queries.get(order_id)
        assert order is not None and (order.status, order.tracking, order.expected_delivery) == ("released", None, None)


def _fuzz(cases: st.SearchStrategy[schemathesis.Case], headers: dict[str, str], answers: Counter[tuple[str, int]], key: str) -> None:
    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        answers[key, response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])

    run()


def test_schemathesis_finds_no_server_error_in_the_fulfilment_api(db_url: str) -> None:
    """Generated requests, within the OpenAPI schema and outside it, on real rows and made-up ids: never a 5xx."""
    with _world(db_url) as w:
        schema = schemathesis.openapi.from_asgi("/openapi.json", w.app).include(path_regex=f"^{API}/")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert sorted(f"{op.method.upper()} {op.path}" for op in operations) == [f"GET {API}/orders", f"POST {API}/orders/{{order_id}}/events"]
        ids = [w.orders[name] for name in ("released", "shipped", "delivered", "held", "cancelled_while_held", "other_released")]
        answers: Counter[tuple[str, int]] = Counter()
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategies = [op.as_strategy(mode)]
                if "{order_id}" in op.path:
                    strategies += [op.as_strategy(mode, path_parameters={"order_id": i}) for i in ids]
                key = f"{op.method.upper()} {op.path} {mode.value}"
                _fuzz(st.one_of(strategies), w.acme, answers, key)
        print("schemathesis answers:", dict(sorted(answers.items())), "total", answers.total())
        per_run = Counter(key for key, _ in answers.elements())
        assert len(per_run) == 4 and min(per_run.values()) >= 50, per_run
        assert answers[f"GET {API}/orders positive", 200] and answers[f"POST {API}/orders/{{order_id}}/events positive", 200], answers
