"""The whole loop on real components: telemetry -> forecast -> order -> signed webhook -> events -> device refills.

Here on the embedded broker and SQLite; tests/infra runs the same loop on Mosquitto with dynamic
security and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import paho.mqtt.client as mqtt
from standardwebhooks import Webhook

from gateway import MqttTarget, Topics, free_port
from gateway.mqtt import new_client
from replenish.bootstrap import Service, serve_http
from replenish.fulfilment import Sink
from replenish.households import ConsentScope
from replenish.settings import Settings
from replenish.storage import Product

SPEED = 3600.0  # one simulated hour per real second


class _Printer:
    """A minimal device on real MQTT: 2 % ink per simulated 2 hours, refills when told `delivered`."""

    def __init__(self, target: MqttTarget, topics: Topics, device_id: str, clock_now) -> None:  # type: ignore[no-untyped-def]
        self.device_id, self.now, self.topics = device_id, clock_now, topics
        self.level = 40.0
        self.seq = 0
        self.saw: list[str] = []
        self.refilled = threading.Event()
        self.client = new_client(target, device_id)
        self.client.on_message = self._on_orders
        self.client.connect(target.host, target.port)
        self.client.subscribe(topics.topic(device_id, "orders"), qos=1)
        self.client.loop_start()
        birth = {"v": 1, "model": "hp-67", "kind": "printer.inkjet", "firmware": "1.0", "slots": [{"slot": "black", "consumable": "ink.black", "unit": "percent", "capacity": 100}]}
        self.client.publish(topics.topic(device_id, "birth"), json.dumps(birth), qos=1, retain=True).wait_for_publish(10)

    def _on_orders(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        slot = json.loads(msg.payload)["slots"].get("black", {})
        self.saw.append(slot.get("status"))
        if slot.get("status") == "delivered" and not self.refilled.is_set():
            self.level = 100.0
            self.refilled.set()
            self.publish(events=[{"type": "replaced", "slot": "black", "level": 100}])

    def publish(self, events: list[dict[str, object]] | None = None) -> None:
        self.seq += 1
        doc = {"v": 1, "seq": self.seq, "ts": self.now().isoformat(), "levels": {"black": round(self.level)}, "events": events or []}
        self.client.publish(self.topics.topic(self.device_id, "telemetry"), json.dumps(doc), qos=1)

    def use(self) -> None:
        self.level = max(self.level - 2.0, 0.0)
        self.publish()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_loop(db: str, namespace: str, mqtt_url: str = "", admin_url: str = "") -> None:
    """One device's need, from its first reading to the refill after delivery, through a whole service."""
    settings = Settings(
        env="test", database_url=db, mqtt_url=mqtt_url, mqtt_admin_url=admin_url, mqtt_port=0, web_port=0,
        clock_speed=SPEED, clock_start=datetime(2026, 11, 2, 8, tzinfo=UTC), tick_seconds=0.2, cancel_window_hours=2,
        gateway_client_id="gw-" + uuid.uuid4().hex[:8], mqtt_namespace=namespace,
    )
    service = Service(settings)
    service.migrate()
    service.start()
    sink_server = None
    printer = None
    try:
        sink_port = free_port()
        creds = service.fulfillers.add("sink", "Test sink", f"http://127.0.0.1:{sink_port}/webhooks/orders", lead_time_days=1)
        sink = Sink(creds.webhook_secret, service.web_url, creds.api_key, service.clock, ship_after=timedelta(hours=2), deliver_after=timedelta(hours=6))
        sink_server = serve_http(sink.app(), "127.0.0.1", sink_port, "test-sink")
        service.catalog.add_product(Product(sku="HP67XL-BK", name="HP 67XL black", consumable="ink.black", models=["hp-67"], unit_price_cents=2499, fulfiller_id="sink"))
        hh = service.households.create("loop@example.org", "Loop", "correct horse battery", address={"line1": "1 Test St", "city": "Testville"})
        device_id = "prn-" + uuid.uuid4().hex[:8]
        assert service.provisioner is not None
        (issued,) = service.provisioner.provision([device_id])
        target = service.mqtt_target
        printer = _Printer(MqttTarget(target.host, target.port, device_id, issued.password), service.topics, device_id, service.clock.now)
        service.households.claim(hh.id, device_id, issued.claim_code)  # type: ignore[arg-type]
        for scope in ConsentScope:
            service.consents.set(hh.id, device_id, scope, True, "loop@example.org")  # type: ignore[arg-type]
        service.catalog.choose(hh.id, device_id, "black", "HP67XL-BK")  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        while not printer.refilled.is_set() and time.monotonic() < deadline:
            printer.use()
            time.sleep(2 / SPEED * 3600)  # two simulated hours
        assert printer.refilled.is_set(), f"device never saw delivered; it saw {printer.saw}"
        assert len(sink.received) == 1, "exactly one order for one need"
        got = sink.received[0]
        assert Webhook(creds.webhook_secret).verify(got.body, got.headers)["order"]["device_id"] == device_id
        order = got.payload["order"]
        assert order["household_ref"].startswith("hh_") and order["items"][0]["sku"] == "HP67XL-BK"
        assert "P10" in order["reason"]
        assert service.queries.get(order["id"]).status == "delivered"  # type: ignore[union-attr]
        assert [s for s in printer.saw if s] [-1] == "delivered" and "shipped" in printer.saw
        with httpx.Client(base_url=service.web_url, follow_redirects=True) as web:
            csrf = web.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
            assert web.post("/login", data={"email": "loop@example.org", "password": "wrong password", "csrf": csrf}).status_code == 401
            page = web.post("/login", data={"email": "loop@example.org", "password": "correct horse battery", "csrf": csrf})
            assert page.status_code == 200 and device_id in page.text and "delivered" in page.text
            assert web.post(f"/orders/{order['id']}/cancel", data={"csrf": "forged"}).status_code == 403
        time.sleep(1)
        assert max(level for _, level in service.gateway.forecasts.history(device_id, "black", settings.clock_start)) == 1.0  # type: ignore[arg-type]
    finally:
        if printer:
            printer.close()
        if sink_server:
            sink_server.stop()
        service.stop()


def test_loop_end_to_end(sqlite_url: str, namespace: str) -> None:
    run_loop(sqlite_url, namespace)
