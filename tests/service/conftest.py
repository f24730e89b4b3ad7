"""The service layer: the embedded MQTT broker and a SQLite file, both of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from gateway import EmbeddedBroker, GatewayStorage, MqttTarget
from tests.helpers import migrated_engine


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The database of the layer: SQLite."""
    return sqlite_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine."""
    eng = migrated_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def storage(engine: Engine) -> GatewayStorage:
    """The gateway's storage adapters on the test's database."""
    return GatewayStorage.on(engine)


@pytest.fixture
def mqtt_target() -> Iterator[MqttTarget]:
    """The broker of the layer: the embedded one on a free port, anonymous clients allowed."""
    broker = EmbeddedBroker(port=0)
    broker.start()
    yield broker.target
    broker.stop()
