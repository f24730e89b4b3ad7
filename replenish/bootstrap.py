"""The one composition root: builds settings' clock, database, broker, gateway and services, and runs them.

Nothing else constructs infrastructure. Every CLI command, the demo, the benches and the tests
build what they need through the functions here, and `Service` is what `replenish up`,
`replenish gateway` and `replenish serve` run. Migrating is a step of its own (`migrate`):
constructing a `Service` touches no schema.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from firmware_sim import Fleet, FleetDevice, SimClock
from gateway import (
    SERVICE_USERNAME,
    AcceleratedClock,
    AwayProvider,
    BrokerAccess,
    Clock,
    DeviceNotifier,
    EmbeddedAccess,
    EmbeddedBroker,
    Forecaster,
    GatewayStorage,
    IngestConnection,
    IngestOptions,
    Ingestor,
    MosquittoDynsec,
    MqttTarget,
    Topics,
    WallClock,
    make_engine,
    new_secret,
    pick_port,
)

from .calendars import Calendars, FeedLimits, Feeds
from .catalog import Catalog
from .events import ConsentChanged, MessageBus, OrderChanged
from .fulfilment import Fulfillers, FulfilmentEvents, OutboxDispatcher, enqueue_release
from .households import Consents, Households
from .notifications import DeviceNotices
from .ordering import OrderActions, OrderPlacer, OrderQueries, StockOuts
from .provisioning import Provisioner
from .settings import Settings
from .storage import migrate as migrate_engine
from .web import CalendarPages, Pages, create_app, probe_app

__all__ = [
    "HttpServer",
    "Service",
    "build_access",
    "build_clock",
    "build_dynsec",
    "build_fleet",
    "build_ingestor",
    "build_provisioner",
    "migrate",
    "open_database",
    "reserved_usernames",
    "serve_http",
]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_RETAIN_EVERY = timedelta(hours=1)  # of business time: readings age by the day, an hourly pass keeps up


def build_clock(settings: Settings) -> Clock:
    """The wall clock, or an accelerated one when REPLENISH_CLOCK_SPEED is not 1."""
    if settings.clock_speed == 1.0 and settings.clock_start is None:
        return WallClock()
    return AcceleratedClock(settings.clock_speed, settings.clock_start)


def open_database(settings: Settings) -> Engine:
    """An engine on REPLENISH_DATABASE_URL (SQLite or PostgreSQL); its schema is not touched."""
    return make_engine(settings.database_url)


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest revision (`replenish migrate`, `replenish up`, the tests)."""
    migrate_engine(engine)


def reserved_usernames(settings: Settings) -> frozenset[str]:
    """The broker's own accounts and the service's client ids: no device may take one (besides any `replenish-` name).

    A device's username is also its client id, so a device named like a gateway worker's client
    id would take over that worker's persistent session and the telemetry queued in it.
    """
    names = {MqttTarget.from_url(settings.mqtt_url).username if settings.mqtt_url else None, SERVICE_USERNAME}
    if settings.mqtt_admin_url:
        names.add(MqttTarget.from_url(settings.mqtt_admin_url).username)
    names |= {settings.gateway_client_id, f"{settings.gateway_client_id}-notifier"}
    return frozenset(n for n in names if n)


def build_dynsec(settings: Settings) -> MosquittoDynsec:
    """Mosquitto's dynamic security, as REPLENISH_MQTT_ADMIN_URL's admin (`replenish broker setup`)."""
    return MosquittoDynsec(MqttTarget.from_url(settings.mqtt_admin_url), topics=settings.topics)


def build_access(settings: Settings, engine: Engine, clock: Clock) -> BrokerAccess | None:
    """Where device credentials go: the embedded broker, Mosquitto's dynamic security, or nowhere."""
    if not settings.mqtt_url:
        return EmbeddedAccess(engine, clock, settings.topics)
    if settings.mqtt_admin_url:
        return build_dynsec(settings)
    return None  # an external broker without an admin account: provision devices there yourself


def build_provisioner(settings: Settings, engine: Engine, gateway: GatewayStorage, clock: Clock) -> Provisioner | None:
    """The provisioner for the configured broker, or None when there is nowhere to install credentials."""
    access = build_access(settings, engine, clock)
    return Provisioner(engine, gateway, access, clock, reserved_usernames(settings)) if access is not None else None


def build_ingestor(storage: GatewayStorage, clock: Clock, target: MqttTarget, options: IngestOptions) -> Ingestor:
    """A gateway worker's ingestor on its own subscriber connection (not yet started)."""
    connection = IngestConnection(
        target, options.client_id, options.subscriptions(), clock.now, version=options.version(), receive_maximum=options.receive_window()
    )
    return Ingestor(storage, connection, options)


def build_fleet(target: MqttTarget, devices: list[FleetDevice], clock: SimClock, interval_hours: float = 1.0, **options: object) -> Fleet:
    """A simulated fleet publishing to `target` (the demo's, or `replenish sim`'s)."""
    return Fleet(target.host, target.port, devices, clock, interval_hours, **options)  # type: ignore[arg-type]


@dataclass
class HttpServer:
    """A uvicorn server on a thread of its own."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """Where it answers."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Ask it to finish, and wait for it."""
        self.server.should_exit = True
        self.thread.join(15)


def serve_http(app: FastAPI, host: str, port: int, name: str) -> HttpServer:
    """Serve an app on `port` (the next free one when taken; 0: any), and wait until it listens."""
    chosen = pick_port(host, port)
    if port and chosen != port:
        log.warning("port %d is taken; %s uses %d", port, name, chosen)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=chosen, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started and time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"{name} failed to start on {host}:{chosen}")
        time.sleep(0.05)
    return HttpServer(server, thread, host, chosen)


class Service:
    """What `replenish up` runs, built from settings; start() and stop() from any thread.

    `ingest` runs the gateway's half (MQTT ingest), `serve` the service's half (forecasts, web
    page and APIs, ordering policy, outbox, device notifications); `up` runs both, and
    docker-compose runs several ingest-only workers beside one serving process. Every process
    answers `/healthz` and `/metrics` (an ingest-only one on REPLENISH_WEB_PORT).
    """

    def __init__(self, settings: Settings, ingest: bool = True, serve: bool = True) -> None:
        s = self.settings = settings
        if not (ingest and serve) and not s.mqtt_url:
            # Each process would start its own embedded broker: devices on one, notices on the other.
            raise ValueError("running ingest and serve in separate processes needs a shared broker: set REPLENISH_MQTT_URL")
        self.ingest, self.serve = ingest, serve
        self.topics: Topics = s.topics
        self.clock = build_clock(s)
        self.engine = open_database(s)
        self.gateway = GatewayStorage.on(self.engine)
        self.households = Households(self.engine, self.clock)
        self.catalog = Catalog(self.engine, self.gateway)
        self.fulfillers = Fulfillers(self.engine, s.lead_time_days)
        self.queries = OrderQueries(self.engine)
        self.access = build_access(s, self.engine, self.clock)
        self.provisioner = Provisioner(self.engine, self.gateway, self.access, self.clock, reserved_usernames(s)) if self.access is not None else None
        self.notices = DeviceNotices(self.queries, None)  # its notifier comes with the broker, at start
        # Domain events, each handled here, once (replenish.events): a new rule is one more subscription.
        self.bus = MessageBus()
        self.consents = Consents(self.engine, self.households, self.gateway, self.clock, self.bus)
        self.actions = OrderActions(self.engine, self.consents, enqueue_release, self.bus)
        self.events = FulfilmentEvents(self.engine, self.bus)
        self.stockouts = StockOuts(self.engine, self.gateway)  # a log line as each stock-out begins and ends
        self.bus.subscribe(ConsentChanged, self.actions.on_consent_changed)  # auto_order withdrawn: waiting orders cancelled
        self.bus.subscribe(OrderChanged, lambda e: self.notices.notify(e.device_id, e.at))  # the device told where its orders stand
        self.forecaster = Forecaster(self.gateway.registry, self.gateway.forecasts)
        self.http = httpx.Client()
        self.calendars = Calendars(self.engine, self.clock)
        self.placer = OrderPlacer(
            self.engine, self.gateway, self.households, self.consents, self.bus,
            cancel_window=timedelta(hours=s.cancel_window_hours), review_every=timedelta(seconds=s.tick_seconds * self.clock.speed),
            away=self._away_periods,  # no parcel arrives while a household is away
        )  # fmt: skip
        # Feeds are URLs households name: no redirect followed unchecked, no proxy from the environment
        # (the address check must see the address connected to; docs/calendars.md).
        self.feed_http = httpx.Client(follow_redirects=False, trust_env=False, headers={"User-Agent": "replenish-calendars/0.1"})
        limits = FeedLimits(timeout_s=s.calendar_timeout_seconds, every=timedelta(minutes=s.calendar_refresh_minutes), allow_private=s.calendar_allow_private)
        self.feeds = Feeds(self.engine, self.feed_http, self.clock, limits)
        self.outbox = OutboxDispatcher(self.engine, WallClock(), self.http)
        self.broker: EmbeddedBroker | None = None
        self.ingestor: Ingestor | None = None
        self.notifier: DeviceNotifier | None = None
        self.web: HttpServer | None = None
        self._stop = threading.Event()
        self._ticks: threading.Thread | None = None
        self._retained_at: datetime | None = None  # the business time of the last retention pass

    @property
    def web_url(self) -> str:
        """Where the web page and API (or, ingest only, `/healthz` and `/metrics`) answer."""
        assert self.web is not None, "not started"
        return self.web.url

    @property
    def web_port(self) -> int:
        """The port the web server listens on."""
        return self.web.port if self.web is not None else 0

    def migrate(self) -> None:
        """Bring this service's database to the newest schema."""
        migrate(self.engine)

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
        if self.ingest:
            options = IngestOptions(
                client_id=s.gateway_client_id,
                share_group=s.gateway_share_group or None,
                mqtt_version=4 if self.broker is not None else None,  # amqtt speaks 3.1.1 only: no MQTT 5 attempt
                topics=self.topics,
            )
            self.ingestor = build_ingestor(self.gateway, self.clock, target, options)
            self.ingestor.start()
        if self.serve:
            self.notifier = self.notices.notifier = DeviceNotifier(target, client_id=f"{s.gateway_client_id}-notifier", topics=self.topics)
            self.notifier.start()
            pages = Pages(self.households, self.consents, self.gateway, self.queries, self.actions, self.clock, self.placer)
            calendars = CalendarPages(self.calendars, self.feeds, self.clock)
            app = create_app(pages, self.fulfillers, self.events, self.provisioner, s.secret_key, s.admin_token, calendars=calendars, catalog=self.catalog)
            self.web = serve_http(app, s.web_host, s.web_port, "web")
            log.info("web page and API at %s", self.web_url)
            self._ticks = threading.Thread(target=self._tick_loop, name="ticks", daemon=True)
            self._ticks.start()
        else:
            self.web = serve_http(probe_app("replenish gateway"), s.web_host, s.web_port, "probes")
        roles = "+".join(r for r, on in (("ingest", self.ingest), ("serve", self.serve)) if on)
        log.info("replenish is up (%s): MQTT %s", roles, target.url)

    def tick(self, now: datetime | None = None) -> None:
        """One pass of the serve role, in order: settle readings, refresh forecasts, log stock-outs, plan, release, deliver webhooks, retention, feeds."""
        now = now or self.clock.now()
        # One forecaster (and one settler) for the whole deployment: several ingest workers would
        # forecast the same slots twice and race on inserting the same forecast rows.
        self.gateway.settler.settle()
        self.forecaster.refresh(now, self.away(now))
        self.stockouts.check(now)
        self.placer.plan(now)
        self.actions.release_due(now)
        self.outbox.dispatch_due(now)
        self._retain(now)
        self.feeds.refresh_due(now)  # last: a slow feed delays nothing of this pass

    def _away_periods(self, households: Iterable[int], start: datetime, end: datetime) -> dict[int, list[tuple[datetime, datetime]]]:
        """The ordering policy's view of the households' calendars: (start, end) of each time away."""
        return {h: [(p.start, p.end) for p in periods] for h, periods in self.calendars.away_of(households, start, end).items()}

    def away(self, now: datetime) -> AwayProvider:
        """The forecaster's away periods at `now`: each device's claiming household's calendars (SPEC 4)."""
        return self.calendars.provider(self.households.owners, now)

    def _retain(self, now: datetime) -> None:
        """At most once an hour: readings older than REPLENISH_RETENTION_DAYS become daily aggregates (SPEC 4)."""
        if self._retained_at is not None and now - self._retained_at < _RETAIN_EVERY:
            return
        self._retained_at = now
        self.gateway.retention.reduce(now - timedelta(days=self.settings.retention_days))

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.settings.tick_seconds):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad pass must not stop the service
                log.exception("tick failed")

    def stop(self) -> None:
        """Stop everything, in reverse order of start."""
        self._stop.set()
        if self.web is not None:
            self.web.stop()
        if self._ticks is not None:
            self._ticks.join(15)
        if self.ingestor is not None:
            self.ingestor.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.broker is not None:
            self.broker.stop()
        self.http.close()
        self.feed_http.close()
        self.engine.dispose()
