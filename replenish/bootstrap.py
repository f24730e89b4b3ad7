"""The one composition root: builds settings, clock, database, broker, gateway and services, and runs them."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import uvicorn

from sqlalchemy.engine import Engine

from gateway import (
    SERVICE_USERNAME,
    AcceleratedClock,
    BrokerAccess,
    Clock,
    DeviceNotifier,
    EmbeddedAccess,
    EmbeddedBroker,
    Forecaster,
    GatewayStore,
    Ingestor,
    MosquittoDynsec,
    MqttTarget,
    WallClock,
    make_engine,
    new_secret,
    pick_port,
)

from ._api import create_app
from ._catalog import Catalog
from ._db import migrate
from ._households import Households
from ._orders import Orders
from ._outbox import OutboxDispatcher
from ._provisioning import Provisioner
from ._web import add_web
from .settings import Settings

__all__ = ["Service", "build_access", "build_clock", "reserved_usernames"]

log = logging.getLogger(__name__)


def build_clock(settings: Settings) -> Clock:
    """The wall clock, or an accelerated one when REPLENISH_CLOCK_SPEED is not 1."""
    if settings.clock_speed == 1.0 and settings.clock_start is None:
        return WallClock()
    return AcceleratedClock(settings.clock_speed, settings.clock_start)


@dataclass
class Service:
    """What `replenish up` runs, built from settings; start() and stop() from any thread.

    `ingest` runs the gateway's half (MQTT ingest and forecasts), `serve` the service's half
    (web page and APIs, ordering policy, outbox, device notifications); `up` runs both, and
    docker-compose runs several ingest-only workers beside one serving process.
    """

    settings: Settings
    ingest: bool = True
    serve: bool = True
    clock: Clock = field(init=False)
    broker: EmbeddedBroker | None = field(init=False, default=None)
    web_port: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        s = self.settings
        if not (self.ingest and self.serve) and not s.mqtt_url:
            # Each process would start its own embedded broker: devices on one, notices on the other.
            raise ValueError("running ingest and serve in separate processes needs a shared broker: set REPLENISH_MQTT_URL")
        self.clock = build_clock(s)
        self.engine = make_engine(s.database_url)
        migrate(self.engine)
        self.store = GatewayStore(self.engine)
        self.catalog = Catalog(self.engine)
        self.households = Households(self.engine, self.store, self.clock)
        self.http = httpx.Client()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: uvicorn.Server | None = None
        self.ingestor: Ingestor | None = None
        self.notifier: DeviceNotifier | None = None
        self.access = build_access(s, self.engine, self.clock)
        self.provisioner = (
            Provisioner(self.engine, self.store, self.access, self.clock, reserved_usernames(s)) if self.access is not None else None
        )

    @property
    def web_url(self) -> str:
        """Where the web page and API answer."""
        return f"http://{self.settings.web_host}:{self.web_port}"

    def _mqtt(self) -> MqttTarget:
        """The broker to use: the configured one, or the embedded one with a fresh service password."""
        s = self.settings
        if s.mqtt_url:
            return MqttTarget.from_url(s.mqtt_url)
        assert isinstance(self.access, EmbeddedAccess)
        password = new_secret()
        self.access.grant_service(SERVICE_USERNAME, password)
        self.broker = EmbeddedBroker(s.mqtt_host, s.mqtt_port, access=self.access)
        self.broker.start()
        if s.mqtt_port and self.broker.port != s.mqtt_port:
            log.warning("MQTT port %d is taken; the embedded broker uses %d", s.mqtt_port, self.broker.port)
        return MqttTarget(self.broker.host, self.broker.port, SERVICE_USERNAME, password)

    def start(self) -> None:
        """Start the broker (embedded unless a URL is set), then this process's roles."""
        s = self.settings
        target = self.mqtt_target = self._mqtt()
        self.forecaster = Forecaster(self.store)
        if self.ingest:
            self.ingestor = Ingestor(
                self.store,
                self.clock,
                target,
                client_id=s.gateway_client_id,
                share_group=s.gateway_share_group or None,
                mqtt_version=4 if self.broker is not None else None,  # amqtt speaks 3.1.1 only: no MQTT 5 attempt
            )
            self.ingestor.start()
        if self.serve:
            self._start_serving(target)
        if self.serve:
            self._spawn("ticks", self._tick_loop)
        log.info("replenish is up (%s): MQTT %s", "+".join(r for r, on in (("ingest", self.ingest), ("serve", self.serve)) if on), target.url)

    def _start_serving(self, target: MqttTarget) -> None:
        s = self.settings
        self.notifier = DeviceNotifier(target, client_id=f"{s.gateway_client_id}-notifier")
        self.notifier.start()
        self.orders = Orders(
            self.engine,
            self.store,
            self.households,
            self.notifier,
            cancel_window=timedelta(hours=s.cancel_window_hours),
            review_every=timedelta(seconds=s.tick_seconds * self.clock.speed),
        )
        self.outbox = OutboxDispatcher(self.engine, WallClock(), self.http)
        self.app = create_app(self.catalog, self.orders, self.clock.now, self.provisioner, s.admin_token)
        add_web(self.app, s.secret_key, self.households, self.store, self.orders, self.clock)
        self.web_port = pick_port(s.web_host, s.web_port)
        if s.web_port and self.web_port != s.web_port:
            log.warning("web port %d is taken; using %d", s.web_port, self.web_port)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=s.web_host, port=self.web_port, log_level="warning", lifespan="on"))
        self._spawn("web", self._server.run)
        deadline = time.monotonic() + 30
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("web page and API at %s", self.web_url)

    def _spawn(self, name: str, target: object) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def tick(self) -> None:
        """One pass of the serve role: refresh forecasts, plan, release and deliver orders."""
        now = self.clock.now()
        if self.serve:
            # One forecaster for the whole deployment: several ingest workers would forecast the
            # same slots twice and race on inserting the same forecast rows.
            self.forecaster.refresh(now)
            self.orders.plan(now)
            self.orders.release_due(now)
            self.outbox.dispatch_due(now)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.settings.tick_seconds):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad pass must not stop the service
                log.exception("tick failed")

    def stop(self) -> None:
        """Stop everything, in reverse order of start."""
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in self._threads:
            t.join(15)
        if self.ingestor is not None:
            self.ingestor.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.broker is not None:
            self.broker.stop()
        self.http.close()
        self.engine.dispose()


def reserved_usernames(settings: Settings) -> frozenset[str]:
    """The broker's own accounts (the service's, the dynamic-security admin's): no device may take one."""
    names = {MqttTarget.from_url(settings.mqtt_url).username if settings.mqtt_url else None, SERVICE_USERNAME}
    if settings.mqtt_admin_url:
        names.add(MqttTarget.from_url(settings.mqtt_admin_url).username)
    return frozenset(n for n in names if n)


def build_access(settings: Settings, engine: Engine, clock: Clock) -> BrokerAccess | None:
    """Where device credentials go: the embedded broker, Mosquitto's dynamic security, or nowhere."""
    if not settings.mqtt_url:
        return EmbeddedAccess(engine, clock)
    if settings.mqtt_admin_url:
        return MosquittoDynsec(MqttTarget.from_url(settings.mqtt_admin_url))
    return None  # an external broker without an admin account: provision devices there yourself
