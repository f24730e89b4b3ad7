"""The one composition root: builds settings, clock, database, broker, gateway and services, and runs them."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import uvicorn

from gateway import (
    AcceleratedClock,
    Clock,
    DeviceNotifier,
    EmbeddedBroker,
    Forecaster,
    GatewayStore,
    Ingestor,
    MqttTarget,
    WallClock,
    make_engine,
    pick_port,
)

from ._api import create_app
from ._catalog import Catalog
from ._db import migrate
from ._households import Households
from ._orders import Orders
from ._outbox import OutboxDispatcher
from ._web import add_web
from .settings import Settings

__all__ = ["Service", "build_clock"]

log = logging.getLogger(__name__)


def build_clock(settings: Settings) -> Clock:
    """The wall clock, or an accelerated one when REPLENISH_CLOCK_SPEED is not 1."""
    if settings.clock_speed == 1.0 and settings.clock_start is None:
        return WallClock()
    return AcceleratedClock(settings.clock_speed, settings.clock_start)


@dataclass
class Service:
    """Everything `replenish up` runs, built from settings; start() and stop() from any thread."""

    settings: Settings
    clock: Clock = field(init=False)
    broker: EmbeddedBroker | None = field(init=False, default=None)
    web_port: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        s = self.settings
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

    @property
    def web_url(self) -> str:
        """Where the web page and API answer."""
        return f"http://{self.settings.web_host}:{self.web_port}"

    def start(self) -> None:
        """Start the broker (embedded unless a URL is set), ingest, the tick loop and the web server."""
        s = self.settings
        if s.mqtt_url:
            target = MqttTarget.from_url(s.mqtt_url)
        else:
            self.broker = EmbeddedBroker(s.mqtt_host, s.mqtt_port)
            self.broker.start()
            target = self.broker.target
            if s.mqtt_port and self.broker.port != s.mqtt_port:
                log.warning("MQTT port %d is taken; the embedded broker uses %d", s.mqtt_port, self.broker.port)
        self.mqtt_target = target
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
        self.forecaster = Forecaster(self.store)
        self.ingestor = Ingestor(self.store, self.clock, target, client_id=s.gateway_client_id)
        self.ingestor.start()
        self.app = create_app(self.catalog, self.orders, self.clock.now)
        add_web(self.app, s.secret_key, self.households, self.store, self.orders, self.clock)
        self.web_port = pick_port(s.web_host, s.web_port)
        if s.web_port and self.web_port != s.web_port:
            log.warning("web port %d is taken; using %d", s.web_port, self.web_port)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=s.web_host, port=self.web_port, log_level="warning", lifespan="on"))
        self._spawn("web", self._server.run)
        self._spawn("ticks", self._tick_loop)
        deadline = time.monotonic() + 30
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("replenish is up: web %s, MQTT %s", self.web_url, target.url)

    def _spawn(self, name: str, target: object) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def tick(self) -> None:
        """One pass: refresh forecasts, plan orders, release due ones, deliver webhooks."""
        self.forecaster.refresh(self.clock.now())
        self.orders.plan(self.clock.now())
        self.orders.release_due(self.clock.now())
        self.outbox.dispatch_due(self.clock.now())

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
        self.ingestor.stop()
        self.notifier.stop()
        if self.broker is not None:
            self.broker.stop()
        self.http.close()
        self.engine.dispose()
