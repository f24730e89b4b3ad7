"""The `replenish` command: up, gateway, serve, migrate, demo, sim, broker setup, devices provision.

Each command builds what it needs through the composition root (`replenish.bootstrap`).
"""

import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from .logs import configure_logging
from .settings import Settings

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
