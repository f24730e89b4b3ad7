"""The infra layer: the machine's PostgreSQL and Mosquitto, and brokers the tests start of their own.

A test here fails, never skips, when a server is missing. On the machine's Mosquitto, which keeps
retained messages across runs, each test works under its own topic namespace (`topics`), so it
never sees another's messages, and clears what it retained there when it ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway import MqttTarget, Topics
from tests.helpers import MQTT_URL, DynsecBroker, clear_retained, dynsec_mosquitto, mosquitto, pg_database


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards."""
    with pg_database() as url:
        yield url


@pytest.fixture
def db_url(pg_database_url: str) -> str:
    """The database of the layer: PostgreSQL."""
    return pg_database_url


@pytest.fixture
def mqtt_target(topics: Topics) -> Iterator[MqttTarget]:
    """The broker of the layer: the machine's Mosquitto; what the test retained under its namespace is cleared after."""
    target = MqttTarget.from_url(MQTT_URL)
    yield target
    clear_retained(target, f"{topics.root}/#")


@pytest.fixture(scope="module")
def mosquitto_url() -> Iterator[str]:
    """The machine's Mosquitto binary on a free port of this module's own, default queue limits, no persistence."""
    with mosquitto() as port:
        yield f"mqtt://127.0.0.1:{port}"


@pytest.fixture
def dynsec_broker() -> Iterator[DynsecBroker]:
    """A second Mosquitto (the machine's binary) with dynamic security, no anonymous clients; stopped after."""
    with dynsec_mosquitto() as broker:
        yield broker
