"""A household is told when its device keeps sending more than its budget (issue 10, item 3; docs/protocol.md, "rate").

Edge to edge: devices flood the layer's broker, a gateway worker drops what is over each
device's budget and notes it once a minute as an `over_budget` dead letter, and the household's
web page shows the device that went on for ten minutes of the last hour, to its household only.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import REGISTRY

from gateway import GatewayStorage, IngestOptions, MqttTarget, Topics
from gateway.clock import ManualClock
from replenish.bootstrap import Service, build_ingestor
from replenish.settings import Settings
from replenish.web import Pages, create_app
from tests.helpers import publish_all, wait_for

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
PASSWORD = "long enough password"


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("replenish_gateway_rejected_total", {"reason": reason}) or 0.0


def _notes(storage: GatewayStorage, device: str) -> int:
    return sum(1 for d in storage.dead_letters.recent(10_000) if d.reason == "over_budget" and f"/{device}/" in d.topic)


def _home(app: object, email: str) -> httpx.Response:
    async def visit() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", follow_redirects=True) as web:  # type: ignore[arg-type]
            csrf = (await web.get("/login")).text.split('name="csrf" value="')[1].split('"')[0]
            await web.post("/login", data={"email": email, "password": PASSWORD, "csrf": csrf})
            return await web.get("/")

    return asyncio.run(visit())


def test_a_household_is_told_when_its_device_keeps_flooding_and_only_that_household(db_url: str, mqtt_target: MqttTarget, topics: Topics) -> None:
    service = Service(Settings(env="test", database_url=db_url, admin_token="op-token", clock_start=NOW, clock_speed=1.0))
    service.migrate()
    assert service.provisioner is not None
    issued = {i.device_id: i for i in service.provisioner.provision(["loud-1", "calm-1", "loud-2"])}
    a = service.households.create("a@example.org", "A", PASSWORD)
    b = service.households.create("b@example.org", "B", PASSWORD)
    for household, device in ((a, "loud-1"), (a, "calm-1"), (b, "loud-2")):
        service.households.claim(household.id, device, issued[device].claim_code)  # type: ignore[arg-type]
    clock = ManualClock(NOW)
    # A budget of 3 at once and next to nothing after: each round of 5 messages is over it.
    options = IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], topics=topics, device_burst=3, device_per_minute=1e-6)
    ingestor = build_ingestor(service.gateway, clock, mqtt_target, options)
    ingestor.start()
    rejected_before = _rejected("over_budget")
    try:
        # loud-1 floods for 11 minutes, loud-2 for 3; calm-1 sends a reading every five minutes, within its budget.
        for minute in range(12):
            calm = [] if minute % 5 else [("calm-1", minute)]
            msgs = [(topics.topic(d, "telemetry"), json.dumps({"v": 1, "seq": s, "ts": clock.now().isoformat(), "levels": {"black": 50}}).encode(), False) for d, s in calm]
            for device in ("loud-1", "loud-2") if minute < 4 else ("loud-1",):
                msgs += [(topics.topic(device, "telemetry"), json.dumps({"v": 1, "seq": minute * 5 + i, "ts": clock.now().isoformat(), "levels": {"black": 50}}).encode(), False) for i in range(5)]
            publish_all(mqtt_target, msgs)
            # One note a minute, at the round's first drop (the clock moves on only once it is stored).
            assert wait_for(lambda: _notes(service.gateway, "loud-1") == minute + 1 and ingestor.pending == 0, timeout=20), minute  # noqa: B023
            clock.advance(60)
        assert _notes(service.gateway, "loud-2") == 4 and _notes(service.gateway, "calm-1") == 0
        # Each dropped message is counted once (the notes are not counted again): 2 + 5 * 11 of loud-1's, 2 + 5 * 3 of loud-2's.
        assert _rejected("over_budget") - rejected_before == 57 + 17
    finally:
        ingestor.stop()

    clock.advance(-60)  # the minute of the last round
    pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, clock)
    app = create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", service.settings.admin_token)
    # The notes count what was dropped up to the last round's first drop: 1, then 1 + 1, then 4 + 1 each minute after.
    found = service.gateway.dead_letters.over_budget(["loud-1", "calm-1", "loud-2"], clock.now())
    assert list(found) == ["loud-1"], "loud-2's three minutes are a burst, calm-1 is within its budget"
    assert (found["loud-1"].dropped, found["loud-1"].since, found["loud-1"].last) == (1 + 2 + 5 * 10, NOW, NOW + timedelta(minutes=11))

    page_a, page_b = _home(app, "a@example.org"), _home(app, "b@example.org")
    assert page_a.status_code == page_b.status_code == 200
    text_a = " ".join(page_a.text.split())
    assert "loud-1 sends more messages than it is allowed to." in text_a
    assert "Since Nov 02 09:00 UTC, 53 of its messages were discarded, most recently at Nov 02 09:11 UTC." in text_a
    assert "Readings it sends beyond its allowance are not stored" in text_a and "check its firmware and settings" in text_a and "contact its maker" in text_a
    assert text_a.count('class="over-budget"') == 1, "calm-1 gets no notice"
    assert "loud-1" not in page_b.text and 'class="over-budget"' not in page_b.text, "another household sees nothing of it, nor a notice for its own burst"

    # An hour after the flood began, what is left of the last hour spans less than ten minutes: no notice.
    clock.advance(55 * 60)
    assert 'class="over-budget"' not in _home(app, "a@example.org").text
    service.stop()
