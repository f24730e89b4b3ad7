"""Shared fixtures: real databases (SQLite file, PostgreSQL) and real brokers (embedded, Mosquitto)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import EmbeddedBroker, MqttTarget, make_engine
from replenish._db import migrate

PG_URL = os.environ.get("REPLENISH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_URL = os.environ.get("REPLENISH_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards; fails when the server is away."""
    admin = sa.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = "t_" + uuid.uuid4().hex[:12]
    conninfo = f"host={admin.host} port={admin.port or 5432} user={admin.username} dbname={admin.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:  # fails loudly when PostgreSQL is missing
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.infra)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.infra)])
def mqtt_target(request: pytest.FixtureRequest) -> Iterator[MqttTarget]:
    """A broker of each kind: the embedded one on a free port, and the machine's Mosquitto."""
    if request.param == "embedded":
        broker = EmbeddedBroker(port=0)
        broker.start()
        yield broker.target
        broker.stop()
    else:
        yield MqttTarget.from_url(MQTT_URL)
