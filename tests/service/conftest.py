"""The service layer: the embedded MQTT broker and a SQLite file, both of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway import EmbeddedBroker, MqttTarget


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The database of the layer: SQLite."""
    return sqlite_url


@pytest.fixture
def mqtt_target() -> Iterator[MqttTarget]:
    """The broker of the layer: the embedded one on a free port, anonymous clients allowed."""
    broker = EmbeddedBroker(port=0)
    broker.start()
    yield broker.target
    broker.stop()
