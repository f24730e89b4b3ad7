"""The `replenish` command: up, gateway, serve, migrate, demo, sim, broker setup, devices provision, catalog, fulfillers.

Each command builds what it needs through the composition root (`replenish.bootstrap`).
"""

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from .logs import configure_logging
from .settings import Settings

if TYPE_CHECKING:
    from .rowfiles import ImportReport, Rows

T = TypeVar("T")

app = typer.Typer(help="Open auto-replenishment gateway: devices report levels over MQTT, we forecast and order.", no_args_is_help=True)


def _logging(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level)


def _wait_for_signal() -> None:
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()


@app.command()
def up() -> None:
    """Run every service (broker if none configured, gateway, policy, outbox, web page) from REPLENISH_* settings."""
    from .bootstrap import Service

    settings = Settings()
    _logging(settings)
    service = Service(settings)
    service.migrate()
    service.start()
    typer.echo(f"replenish is up: web {service.web_url}  MQTT {service.mqtt_target.url}")
    _wait_for_signal()
    service.stop()


@app.command()
def demo(
    speed: Annotated[float, typer.Option(help="simulated seconds per real second (3600: an hour a second)")] = 3600.0,
    database: Annotated[Path, typer.Option(help="SQLite file; the demo starts it afresh")] = Path("var/demo.db"),
) -> None:
    """Run the product on embedded defaults with a simulated fleet, a demo household and a built-in fulfilment sink."""
    from .demo import DEMO_EMAIL, DEMO_PASSWORD, Demo
    from .bootstrap import Service

    database.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    settings = Settings(database_url=f"sqlite:///{database}", clock_speed=speed, clock_start=datetime.now(UTC))
    _logging(settings)
    service = Service(settings)
    service.migrate()
    service.start()
    demo_run = Demo(service)
    demo_run.start()
    typer.echo(f"\n  Web page: {service.web_url}\n  Log in as {DEMO_EMAIL} / {DEMO_PASSWORD}\n  Clock: {speed:g}x real time. Ctrl-C stops.\n")
    _wait_for_signal()
    demo_run.stop()
    service.stop()


@app.command()
def sim(
    mqtt_url: Annotated[str, typer.Option(help="broker as mqtt://user:pass@host:port (user:pass optional: the login of devices without their own credentials); overrides --mqtt-host/--mqtt-port")] = "",
    mqtt_host: Annotated[str, typer.Option(help="broker host")] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option(help="broker port")] = 1883,
    devices: Annotated[int | None, typer.Option(help="how many devices (default: every device in --credentials, else 10)")] = None,
    kinds: Annotated[str, typer.Option(help="kinds mix as kind=weight,...: printer.inkjet, printer.laser, fridge, coffee, water_filter, dishwasher ('all': equal shares)")] = "all",
    speed: Annotated[float, typer.Option(help="simulated seconds per real second (3600: an hour a second)")] = 3600.0,
    interval_hours: Annotated[float, typer.Option(help="simulated hours between a device's telemetry messages")] = 1.0,
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same fleet")] = 1,
    prefix: Annotated[str, typer.Option(help="device ids are PREFIX-00000, PREFIX-00001, ... (devices not in --credentials)")] = "sim",
    credentials: Annotated[Path | None, typer.Option(help='JSON {"devices": [{"device_id", "password"}, ...]}: each listed device logs in as itself')] = None,
    p_offline: Annotated[float, typer.Option(help="chance a day that a device goes offline for a spell (buffers, then bursts)")] = 0.02,
    offline_hours: Annotated[float, typer.Option(help="median length of an offline spell, simulated hours")] = 3.0,
    p_reboot: Annotated[float, typer.Option(help="chance a day that a device reboots (seq restarts at 0)")] = 0.01,
    p_skew: Annotated[float, typer.Option(help="share of devices whose clock is off by seconds to --max-skew-hours")] = 0.2,
    max_skew_hours: Annotated[float, typer.Option(help="largest clock offset of a skewed device")] = 6.0,
    p_away: Annotated[float, typer.Option(help="chance a year of a household's main holiday (0: nobody ever goes away)")] = 0.78,
    p_unknown: Annotated[float, typer.Option(help="chance a reading is null or 'unknown'")] = 0.002,
    p_elsewhere: Annotated[float, typer.Option(help="chance a household buys a running-low unit elsewhere anyway")] = 0.1,
    exact: Annotated[bool, typer.Option(help="report exact levels: no quantisation, noise or sentinels")] = False,
    wave_size: Annotated[int, typer.Option(help="devices that connect together")] = 250,
    wave_interval: Annotated[float, typer.Option(help="real seconds between connection waves")] = 0.05,
    namespace: Annotated[str, typer.Option(help="topic namespace of the deployment (its REPLENISH_MQTT_NAMESPACE); empty: none")] = "",
) -> None:
    """Run a simulated fleet of household devices against an MQTT broker (see docs/simulator.md)."""
    import random

    from firmware_sim import KINDS, FleetDevice, Quirks, SimClock, load_credentials
    from gateway import MqttTarget, Topics

    from .bootstrap import build_fleet

    configure_logging("console", "INFO")
    try:
        Topics(namespace)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    target = MqttTarget.from_url(mqtt_url) if mqtt_url else MqttTarget(mqtt_host, mqtt_port)
    passwords = load_credentials(credentials) if credentials else {}
    count = devices if devices is not None else (len(passwords) or 10)
    ids = (list(passwords) + [f"{prefix}-{i:05d}" for i in range(count)])[:count]
    mix = {k: 1.0 for k in KINDS} if kinds == "all" else {k.strip(): float(w or 1) for k, _, w in (p.partition("=") for p in kinds.split(","))}
    if unknown := set(mix) - set(KINDS):
        raise typer.BadParameter(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    quirks = Quirks(
        quantise=not exact, p_unknown=p_unknown, p_offline=p_offline, offline_hours=(offline_hours, 1.5), p_reboot=p_reboot,
        p_skew=p_skew, max_skew_h=max_skew_hours, p_away=p_away, p_elsewhere=p_elsewhere,
    )
    fleet = build_fleet(
        target, [FleetDevice(i, kind=rng.choices(list(mix), list(mix.values()))[0]) for i in ids], SimClock(speed), interval_hours, seed=seed,
        credentials=passwords, quirks=quirks, wave_size=wave_size, wave_interval_s=wave_interval, username=target.username, password=target.password,
        namespace=namespace,
    )
    fleet.start()
    typer.echo(f"{count} simulated devices publishing to {target.url} at {speed:g}x. Ctrl-C stops.")
    _wait_for_signal()
    fleet.stop()


def _run_service(ingest: bool, serve: bool) -> None:
    from .bootstrap import Service

    settings = Settings()
    _logging(settings)
    service = Service(settings, ingest=ingest, serve=serve)
    service.start()  # the schema is `replenish migrate`'s (docker-compose runs it once, before the workers)
    if serve:
        typer.echo(f"replenish is serving: web {service.web_url}  MQTT {service.mqtt_target.url}")
    _wait_for_signal()
    service.stop()


@app.command()
def gateway() -> None:
    """Run one gateway worker: MQTT ingest (REPLENISH_GATEWAY_SHARE_GROUP shares telemetry between workers)."""
    _run_service(ingest=True, serve=False)


@app.command()
def serve() -> None:
    """Run the replenishment service without ingest: forecasts, web page, APIs, ordering policy, outbox, device notifications."""
    _run_service(ingest=False, serve=True)


@app.command()
def migrate() -> None:
    """Bring the database (REPLENISH_DATABASE_URL) to the newest schema, then exit."""
    from .bootstrap import migrate as run_migrations
    from .bootstrap import open_database

    engine = open_database(Settings())
    run_migrations(engine)
    engine.dispose()
    typer.echo("database schema is up to date")


broker_app = typer.Typer(help="The MQTT broker's accounts (Mosquitto dynamic security).", no_args_is_help=True)
app.add_typer(broker_app, name="broker")


@broker_app.command("setup")
def broker_setup() -> None:
    """Create the service account of REPLENISH_MQTT_URL in Mosquitto, through REPLENISH_MQTT_ADMIN_URL's dynamic security."""
    from gateway import MqttTarget

    from .bootstrap import build_dynsec

    settings = Settings()
    if not settings.mqtt_url or not settings.mqtt_admin_url:
        raise typer.BadParameter("set REPLENISH_MQTT_URL (mqtt://user:password@host:port) and REPLENISH_MQTT_ADMIN_URL")
    service = MqttTarget.from_url(settings.mqtt_url)
    if not service.username or not service.password:
        raise typer.BadParameter("REPLENISH_MQTT_URL must carry the service account's user and password")
    build_dynsec(settings).grant_service(service.username, service.password)
    typer.echo(f"service account {service.username!r} may read device topics and publish orders")


devices_app = typer.Typer(help="Devices: provision credentials and claim codes.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")


@devices_app.command("provision")
def devices_provision(
    device_ids: Annotated[list[str] | None, typer.Argument(help="device ids to provision (or use --prefix and --count)")] = None,
    prefix: Annotated[str, typer.Option(help="numbered ids: PREFIX-00000, PREFIX-00001, ...")] = "",
    count: Annotated[int, typer.Option(help="how many numbered ids")] = 0,
    start: Annotated[int, typer.Option(help="first number of the numbered ids")] = 0,
    out: Annotated[Path | None, typer.Option(help="write the credentials here as JSON (mode 600) instead of stdout")] = None,
) -> None:
    """Issue per-device MQTT credentials and claim codes, and install the credentials in the broker."""
    from gateway import GatewayStorage

    from .bootstrap import build_clock, build_provisioner, migrate, open_database
    from .provisioning import numbered_ids

    settings = Settings()
    ids = list(device_ids or []) + (numbered_ids(prefix, count, start) if prefix and count else [])
    if not ids:
        raise typer.BadParameter("give device ids, or --prefix and --count")
    engine = open_database(settings)
    migrate(engine)
    provisioner = build_provisioner(settings, engine, GatewayStorage.on(engine), build_clock(settings))
    if provisioner is None:
        raise typer.BadParameter("set REPLENISH_MQTT_ADMIN_URL (Mosquitto's dynamic-security admin) to install credentials")
    issued = provisioner.provision(ids)
    engine.dispose()
    doc = json.dumps({"devices": [{"device_id": p.device_id, "password": p.password, "claim_code": p.claim_code} for p in issued]}, indent=1)
    if out is None:
        typer.echo(doc)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was there before, with a wider mode
    with os.fdopen(fd, "w") as f:
        f.write(doc)
    typer.echo(f"{len(issued)} devices provisioned; credentials and claim codes in {out}")


def _secret_out(doc: str, out: Path | None, summary: str) -> None:
    """Credentials to stdout, or to `out` readable by its owner only."""
    if out is None:
        typer.echo(doc)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(doc)
    typer.echo(f"{summary}; credentials in {out}")


def _file_rows(path: Path, fmt: str | None, columns: tuple[str, ...]) -> "Rows":
    """A file's rows, or exit naming what is wrong with it in one line (SPEC 6)."""
    from .rowfiles import FileError, format_of, read_rows

    try:
        return read_rows(path.read_text(encoding="utf-8-sig"), format_of(path.name, fmt), columns)
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: cannot read {path}: {exc}", err=True)
    except FileError as exc:
        typer.echo(f"error: {path}: {exc}", err=True)
    raise typer.Exit(2)


def _report(report: "ImportReport", what: str) -> None:
    """One line per bad value on stderr, a summary on stdout; exit 1 when any row was bad."""
    for e in report.errors:
        typer.echo(f"{e}", err=True)
    if not report.applied:
        typer.echo(f"nothing applied: {len(report.errors)} errors (--all-or-nothing)")
        raise typer.Exit(1)
    typer.echo(f"{what}: {len(report.created)} created, {len(report.updated)} updated, {len({e.row for e in report.errors})} rows rejected")
    if report.errors:
        raise typer.Exit(1)


def _with_progress(label: str, total: int, work: "Callable[[Callable[[int], None]], T]") -> "T":
    """Run `work`, which reports rows done, under a progress bar (shown on a terminal)."""
    with typer.progressbar(length=total, label=label, file=sys.stderr, hidden=not sys.stderr.isatty()) as bar:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            bar.update(n - done)
            done = n

        return work(advance)


_FORMAT = Annotated[str | None, typer.Option("--format", help="csv or json (default: from the file's extension)")]
_ALL_OR_NOTHING = Annotated[bool, typer.Option("--all-or-nothing", help="apply nothing when any row is bad (default: apply the good rows)")]

catalog_app = typer.Typer(help="The product catalog: import and list products (docs/catalog.md).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("import")
def catalog_import(file: Annotated[Path, typer.Argument(help="a CSV or JSON file of products")], format: _FORMAT = None, all_or_nothing: _ALL_OR_NOTHING = False) -> None:
    """Create or update products by SKU; each bad row is named with its field and reason, the good ones applied."""
    from .bootstrap import migrate, open_database
    from .catalog import PRODUCT_COLUMNS, Catalog

    rows = _file_rows(file, format, PRODUCT_COLUMNS)
    engine = open_database(Settings())
    migrate(engine)
    report = _with_progress("products", len(rows), lambda progress: Catalog(engine).import_rows(rows, all_or_nothing, progress))
    engine.dispose()
    _report(report, "products")


@catalog_app.command("list")
def catalog_list() -> None:
    """Every product as JSON lines."""
    from .bootstrap import open_database
    from .catalog import Catalog

    engine = open_database(Settings())
    for p in Catalog(engine).products():
        typer.echo(json.dumps(p.model_dump()))
    engine.dispose()


fulfillers_app = typer.Typer(help="Fulfilment systems: register, import and list them (docs/catalog.md).", no_args_is_help=True)
app.add_typer(fulfillers_app, name="fulfillers")


@fulfillers_app.command("add")
def fulfillers_add(
    fulfiller_id: Annotated[str, typer.Argument(help="its id, e.g. acme-eu")],
    name: Annotated[str, typer.Argument(help="its name")],
    webhook_url: Annotated[str, typer.Argument(help="where its orders are POSTed")],
    lead_time_days: Annotated[float | None, typer.Option(help="release to delivery, days (default: REPLENISH_LEAD_TIME_DAYS)")] = None,
    sandbox: Annotated[bool, typer.Option(help="test orders only: nothing it receives is shipped")] = False,
    webhook_secret: Annotated[str | None, typer.Option(help="whsec_... to sign its webhooks with (default: generated)")] = None,
    api_key: Annotated[str | None, typer.Option(help="the key it calls us with (default: generated); stored hashed only")] = None,
    out: Annotated[Path | None, typer.Option(help="write the credentials here as JSON (mode 600) instead of stdout")] = None,
) -> None:
    """Register a fulfilment system; its webhook secret and API key are shown only now."""
    from .bootstrap import migrate, open_database
    from .fulfilment import Fulfillers

    settings = Settings()
    engine = open_database(settings)
    migrate(engine)
    try:
        creds = Fulfillers(engine, settings.lead_time_days).add(fulfiller_id, name, webhook_url, lead_time_days, sandbox, webhook_secret, api_key)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    doc = json.dumps({"id": creds.fulfiller_id, "webhook_secret": creds.webhook_secret, "api_key": creds.api_key}, indent=1)
    _secret_out(doc, out, f"fulfilment system {fulfiller_id!r} registered")


@fulfillers_app.command("import")
def fulfillers_import(
    file: Annotated[Path, typer.Argument(help="a CSV or JSON file of fulfilment systems")],
    format: _FORMAT = None,
    all_or_nothing: _ALL_OR_NOTHING = False,
    out: Annotated[Path | None, typer.Option(help="write new credentials here as JSON (mode 600) instead of stdout")] = None,
) -> None:
    """Create or update fulfilment systems by id; secrets not given are generated for new ones and kept for old ones."""
    from .bootstrap import migrate, open_database
    from .fulfilment import FULFILLER_COLUMNS, Fulfillers

    settings = Settings()
    rows = _file_rows(file, format, FULFILLER_COLUMNS)
    engine = open_database(settings)
    migrate(engine)
    fulfillers = Fulfillers(engine, settings.lead_time_days)
    report, issued = _with_progress("fulfilment systems", len(rows), lambda progress: fulfillers.import_rows(rows, all_or_nothing, progress))
    engine.dispose()
    if issued:
        doc = json.dumps({"credentials": [{"id": c.fulfiller_id, "webhook_secret": c.webhook_secret, "api_key": c.api_key} for c in issued]}, indent=1)
        _secret_out(doc, out, f"{len(issued)} new fulfilment systems")
    _report(report, "fulfilment systems")


@fulfillers_app.command("list")
def fulfillers_list() -> None:
    """Every fulfilment system as JSON lines, without secrets."""
    from .bootstrap import open_database
    from .fulfilment import Fulfillers

    engine = open_database(Settings())
    for f in Fulfillers(engine).all():
        typer.echo(json.dumps(f.model_dump(exclude={"webhook_secret", "api_key_hash"})))
    engine.dispose()
