"""Provisioning and the broker's ACL (SPEC 3): device A can neither publish as B nor read B (tests/infra: the same on Mosquitto)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from gateway import BrokerAccess, DeviceSecret, EmbeddedAccess, EmbeddedBroker, MqttTarget, Topics, new_secret
from gateway.clock import ManualClock
from gateway.protocol import topic_for
from replenish.bootstrap import Service
from replenish.provisioning import Provisioner
from replenish.settings import Settings
from replenish.web import create_app
from tests.helpers import migrated_engine, wait_for

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@dataclass
class SecuredBroker:
    """A broker that enforces per-device credentials, with the port that installs them."""

    host: str
    port: int
    access: BrokerAccess
    topics: Topics

    def target(self, username: str | None, password: str | None) -> MqttTarget:
        return MqttTarget(self.host, self.port, username, password)


@pytest.fixture(params=["", "tenant-a/site-1"], ids=["no-namespace", "namespace"])
def secured(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecuredBroker]:
    """The embedded broker with its auth/ACL plugins, with and without a topic namespace."""
    topics = Topics(request.param)
    engine = migrated_engine(f"sqlite:///{tmp_path / 'access.db'}")
    access = EmbeddedAccess(engine, ManualClock(NOW), topics)
    broker = EmbeddedBroker(port=0, access=access)
    broker.start()
    yield SecuredBroker(broker.host, broker.port, access, topics)
    broker.stop()
    engine.dispose()


@dataclass
class Peer:
    """A connected MQTT client that records what it receives."""

    client: mqtt.Client
    connack: mqtt.ReasonCode | None = None
    granted: list[list[mqtt.ReasonCode]] = field(default_factory=list)
    received: list[tuple[str, bytes]] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def subscribe(self, topic: str) -> list[mqtt.ReasonCode]:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10), "no SUBACK"
        return self.granted[-1]

    def publish(self, topic: str, payload: dict[str, object], retain: bool = False) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _connect(target: MqttTarget, will: str | None = None, client_id: str | None = None) -> Peer:
    """Connect; a device's client id is its username (both brokers refuse any other)."""
    client_id = client_id or target.username or "t-" + uuid.uuid4().hex[:10]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    peer = Peer(client)
    if target.username:
        client.username_pw_set(target.username, target.password)
    if will:
        client.will_set(will, json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        peer.connack = reason
        peer.connected.set()

    def on_subscribe(_c: mqtt.Client, _u: object, _mid: int, codes: list[mqtt.ReasonCode], _p: object) -> None:
        peer.granted.append(codes)
        peer.subscribed.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = lambda _c, _u, m: peer.received.append((m.topic, m.payload))
    client.connect(target.host, target.port, keepalive=10)
    client.loop_start()
    assert peer.connected.wait(10), "no CONNACK"
    return peer


def test_a_device_can_neither_publish_as_nor_read_another(secured: SecuredBroker) -> None:
    topic_for, root = secured.topics.topic, secured.topics.root
    a, b = "dev-a-" + uuid.uuid4().hex[:6], "dev-b-" + uuid.uuid4().hex[:6]
    service_password = new_secret()
    secured.access.grant_service("replenish-service", service_password)
    pa, pb = new_secret(), new_secret()
    secured.access.grant_devices([DeviceSecret(a, pa), DeviceSecret(b, pb)])

    for username, password, client_id in ((a, "wrong", None), (a, pb, None), (None, None, None), ("nobody", pa, None), (a, pa, "replenish-gateway")):
        refused = _connect(secured.target(username, password), client_id=client_id)
        assert refused.connack is not None and refused.connack.is_failure, f"{username}/{password} as {client_id} was let in"
        refused.close()

    service = _connect(secured.target("replenish-service", service_password))
    assert not service.connack.is_failure  # type: ignore[union-attr]
    assert not any(c.is_failure for c in service.subscribe(f"{root}/#"))
    service.publish(topic_for(b, "orders"), {"v": 1, "ts": NOW.isoformat(), "slots": {"black": {"order_id": "o-b", "status": "shipped"}}}, retain=True)

    dev_a = _connect(secured.target(a, pa))
    assert not dev_a.connack.is_failure  # type: ignore[union-attr]
    # A forges B's telemetry, then sends its own: the service sees its own only.
    dev_a.publish(topic_for(b, "telemetry"), {"v": 1, "device": b, "seq": 1, "ts": NOW.isoformat(), "levels": {"black": 1}})
    dev_a.publish(topic_for(a, "telemetry"), {"v": 1, "device": a, "seq": 1, "ts": NOW.isoformat(), "levels": {"black": 50}})
    assert wait_for(lambda: any(t == topic_for(a, "telemetry") for t, _ in service.received))
    assert not any(t.startswith(f"{root}/{b}/") and not t.endswith("/orders") for t, _ in service.received)

    # A may read its own orders, but neither B's (retained) orders nor anyone's telemetry.
    assert not any(c.is_failure for c in dev_a.subscribe(topic_for(a, "orders")))
    for stolen in (topic_for(b, "orders"), f"{root}/+/telemetry", f"{root}/#", "replenish/v1/devices/#", "#"):
        codes = dev_a.subscribe(stolen)
        assert all(c.is_failure for c in codes), f"A was granted {stolen}"
    dev_b = _connect(secured.target(b, pb))
    dev_b.publish(topic_for(b, "telemetry"), {"v": 1, "device": b, "seq": 2, "ts": NOW.isoformat(), "levels": {"black": 40}})
    assert wait_for(lambda: any(t == topic_for(b, "telemetry") for t, _ in service.received))
    time.sleep(0.3)
    assert all(t == topic_for(a, "orders") for t, _ in dev_a.received), f"A read {[t for t, _ in dev_a.received]}"

    # A last will on B's status topic never reaches anyone as B's status.
    spoofer = _connect(secured.target(a, pa), will=topic_for(b, "status"))
    if not spoofer.connack.is_failure:  # type: ignore[union-attr]
        spoofer.client.socket().close()  # an abnormal end: the broker would send the will
        spoofer.client.loop_stop()
    time.sleep(1.0)
    assert not any(t == topic_for(b, "status") for t, _ in service.received)

    # Revoked: A can no longer connect.
    secured.access.revoke_device(a)
    time.sleep(0.2)
    revoked = _connect(secured.target(a, pa))
    assert revoked.connack is not None and revoked.connack.is_failure
    for peer in (revoked, dev_a, dev_b, service):
        peer.close()


def _service(db_url: str) -> Service:
    """The composition root's service on the test's database, not started: its parts are used directly."""
    service = Service(Settings(env="test", database_url=db_url, admin_token="op-token", clock_start=NOW, clock_speed=1.0))
    service.migrate()
    return service


def test_provisioning_stores_only_hashes_and_claims_need_the_printed_code(db_url: str) -> None:
    service = _service(db_url)
    engine, access, households = service.engine, service.access, service.households
    assert isinstance(access, EmbeddedAccess)
    provisioner = Provisioner(engine, service.gateway, access, service.clock, ("replenish-service", "admin"))  # admin: Mosquitto's
    (issued,) = provisioner.provision(["kitchen-fridge-1"])
    assert len(issued.claim_code) == 19 and issued.claim_code.count("-") == 3
    with engine.connect() as conn:
        dump = " ".join(str(row) for table in ("gw_credentials", "provisioned_devices") for row in conn.exec_driver_sql(f"SELECT * FROM {table}"))
    assert issued.password not in dump and issued.claim_code.replace("-", "") not in dump.replace("-", "")
    assert access.authenticate("kitchen-fridge-1", issued.password)

    mine = households.create("a@example.org", "A", "long enough password")
    other = households.create("b@example.org", "B", "long enough password")
    with pytest.raises(PermissionError):
        households.claim(mine.id, "kitchen-fridge-1", "0000-0000-0000-0000")  # type: ignore[arg-type]
    with pytest.raises(PermissionError):
        households.claim(mine.id, "no-such-device", issued.claim_code)  # type: ignore[arg-type]
    households.claim(mine.id, "kitchen-fridge-1", issued.claim_code.lower().replace("-", " "))  # type: ignore[arg-type]
    with pytest.raises(PermissionError):
        households.claim(other.id, "kitchen-fridge-1", issued.claim_code)  # type: ignore[arg-type]
    assert households.device_ids(mine.id) == ["kitchen-fridge-1"]  # type: ignore[arg-type]

    (again,) = provisioner.provision(["kitchen-fridge-1"])  # re-provisioning replaces the password
    assert not access.authenticate("kitchen-fridge-1", issued.password) and access.authenticate("kitchen-fridge-1", again.password)
    with pytest.raises(ValueError, match="invalid device id"):
        provisioner.provision(["has/slash"])
    for reserved in ("replenish-service", "admin"):
        with pytest.raises(ValueError, match="invalid device id"):
            provisioner.provision([reserved])
    service.stop()


def _app(service: Service) -> object:
    """The serving process's app, as `Service.start` builds it, for an in-process ASGI client."""
    from replenish.web import Pages

    pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, service.clock)
    return create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", service.settings.admin_token)


def test_operator_api_provisions_with_its_token_only(db_url: str) -> None:
    service = _service(db_url)
    app = _app(service)

    async def calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            return [
                await http.post("/api/admin/v1/devices", json={"prefix": "line", "count": 3}),
                await http.post("/api/admin/v1/devices", json={"prefix": "line", "count": 3}, headers={"Authorization": "Bearer nope"}),
                await http.post("/api/admin/v1/devices", json={"device_ids": ["x/y"]}, headers={"Authorization": "Bearer op-token"}),
                await http.post("/api/admin/v1/devices", json={}, headers={"Authorization": "Bearer op-token"}),
                await http.post("/api/admin/v1/devices", json={"prefix": "line", "count": 3}, headers={"Authorization": "Bearer op-token"}),
            ]

    anonymous, wrong, bad_id, empty, ok = asyncio.run(calls())
    assert (anonymous.status_code, wrong.status_code, bad_id.status_code, empty.status_code) == (401, 401, 422, 422)
    assert "invalid device id" in bad_id.json()["detail"]
    devices = ok.json()["devices"]
    assert [d["device_id"] for d in devices] == ["line-00000", "line-00001", "line-00002"]
    assert all(d["password"] and d["claim_code"] for d in devices)
    assert [d.device_id for d in service.gateway.registry.devices()] == ["line-00000", "line-00001", "line-00002"]
    service.stop()


def test_household_claims_on_the_web_page_with_the_printed_code(db_url: str) -> None:
    service = _service(db_url)
    households = service.households
    assert service.provisioner is not None
    (issued,) = service.provisioner.provision(["hall-filter-7"])
    households.create("web@example.org", "Web", "long enough password")
    app = _app(service)

    async def session() -> tuple[str, str, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", follow_redirects=True) as web:
            csrf = (await web.get("/login")).text.split('name="csrf" value="')[1].split('"')[0]
            home = await web.post("/login", data={"email": "web@example.org", "password": "long enough password", "csrf": csrf})
            csrf = home.text.split('name="csrf" value="')[1].split('"')[0]  # a login starts a new session
            wrong = (await web.post("/devices/claim", data={"device_id": "hall-filter-7", "claim_code": "AAAA-AAAA-AAAA-AAAA", "csrf": csrf})).text
            forged = (await web.post("/devices/claim", data={"device_id": "hall-filter-7", "claim_code": issued.claim_code, "csrf": "forged"})).status_code
            right = (await web.post("/devices/claim", data={"device_id": "hall-filter-7", "claim_code": issued.claim_code, "csrf": csrf})).text
            await web.post("/devices/hall-filter-7/consent/telemetry", data={"granted": "yes", "csrf": csrf})
            return wrong, right, forged

    wrong, right, forged = asyncio.run(session())
    assert "Could not claim hall-filter-7" in wrong and forged == 403
    assert "hall-filter-7 is yours" in right
    assert households.device_ids(households.by_email("web@example.org").id) == ["hall-filter-7"]  # type: ignore[union-attr,arg-type]
    assert service.consents.in_force(["hall-filter-7"]) == {("hall-filter-7", "telemetry"): True}
    assert service.gateway.registry.devices(["hall-filter-7"])[0].store_readings  # the gateway stores its levels from now on
    service.stop()


def test_a_wrong_password_cannot_erase_the_gateways_session_on_the_embedded_broker(tmp_path: Path) -> None:
    engine = migrated_engine(f"sqlite:///{tmp_path / 'access.db'}")
    access = EmbeddedAccess(engine, ManualClock(NOW))
    access.grant_service("replenish-service", "service-secret")
    access.grant_devices([DeviceSecret("dev-s", "device-secret")])
    broker = EmbeddedBroker(port=0, access=access)
    broker.start()
    try:
        gateway_target = MqttTarget(broker.host, broker.port, "replenish-service", "service-secret")
        gw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replenish-gateway", clean_session=False, protocol=mqtt.MQTTv311)
        gw.username_pw_set("replenish-service", "service-secret")
        gw.connect(broker.host, broker.port)
        gw.loop_start()
        gw.subscribe("replenish/v1/devices/+/telemetry", qos=1)
        time.sleep(0.5)
        gw.disconnect()
        gw.loop_stop()
        device = _connect(MqttTarget(broker.host, broker.port, "dev-s", "device-secret"))
        device.publish(topic_for("dev-s", "telemetry"), {"v": 1, "seq": 1, "ts": NOW.isoformat(), "levels": {"x": 1}})
        device.close()
        intruder = _connect(MqttTarget(broker.host, broker.port, "replenish-service", "guess"), client_id="replenish-gateway")
        assert intruder.connack is not None and intruder.connack.is_failure
        intruder.close()
        refused: list[mqtt.ReasonCode] = []  # the same with a persistent session: no take-over either
        sneak = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replenish-gateway", clean_session=False, protocol=mqtt.MQTTv311)
        sneak.username_pw_set("replenish-service", "guess")
        sneak.on_connect = lambda _c, _u, _f, reason, _p: refused.append(reason)
        sneak.connect(broker.host, broker.port)
        sneak.loop_start()
        assert wait_for(lambda: bool(refused)) and refused[0].is_failure
        sneak.disconnect()
        sneak.loop_stop()
        received: list[str] = []
        gw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replenish-gateway", clean_session=False, protocol=mqtt.MQTTv311)
        gw.username_pw_set(gateway_target.username, gateway_target.password)
        gw.on_message = lambda _c, _u, m: received.append(m.topic)
        gw.connect(broker.host, broker.port)
        gw.loop_start()
        assert wait_for(lambda: received == [topic_for("dev-s", "telemetry")]), "the queued reading was lost with the session"
        gw.disconnect()
        gw.loop_stop()
    finally:
        broker.stop()
        engine.dispose()


def test_no_device_may_be_named_like_the_services_accounts_or_client_ids(db_url: str, tmp_path: Path) -> None:
    """A device's username is its client id: named like a gateway worker, it would take over the worker's session."""
    service = Service(Settings(env="test", database_url=db_url, gateway_client_id="gw-main", clock_start=NOW))
    service.migrate()
    try:
        assert service.provisioner is not None
        for name in ("replenish-gateway", "replenish-gateway-1", "replenish-service-notifier", "replenish-dynsec-1", "gw-main", "gw-main-notifier"):
            with pytest.raises(ValueError, match="invalid device id"):
                service.provisioner.provision([name])
        assert [p.device_id for p in service.provisioner.provision(["gw-main-2", "my-replenish-printer"])] == ["gw-main-2", "my-replenish-printer"]
    finally:
        service.stop()
    # A reserved name that reached the embedded broker's credentials some other way is refused all the same.
    engine = migrated_engine(f"sqlite:///{tmp_path / 'reserved.db'}")
    access = EmbeddedAccess(engine, ManualClock(NOW))
    access.grant_devices([DeviceSecret("replenish-gateway", "pw"), DeviceSecret("fine-device", "pw")])
    broker = EmbeddedBroker(port=0, access=access)
    broker.start()
    try:
        taker = _connect(MqttTarget(broker.host, broker.port, "replenish-gateway", "pw"))
        assert taker.connack is not None and taker.connack.is_failure
        taker.close()
        fine = _connect(MqttTarget(broker.host, broker.port, "fine-device", "pw"))
        assert fine.connack is not None and not fine.connack.is_failure
        fine.close()
    finally:
        broker.stop()
        engine.dispose()
