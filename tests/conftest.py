"""Fixtures every layer shares. The layers' own are in tests/service and tests/infra (docs/architecture.md, "Tests").

- tests/core: the pure core, known answers; no broker, no database (`make test-fast`).
- tests/service: the services edge to edge on the embedded broker and SQLite.
- tests/infra: the machine's Mosquitto and PostgreSQL (and brokers of the tests' own); marked `infra`.
- tests/deploy: what an operator deploys with: docker-compose, the Dockerfile, a plain `pip install`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from gateway import GatewayStorage, Topics
from tests.helpers import migrated_engine


@pytest.fixture
def namespace() -> str:
    """A topic namespace of this test's own: on a shared broker, it sees only its own messages."""
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def topics(namespace: str) -> Topics:
    """The device topics under this test's namespace."""
    return Topics(namespace)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on the layer's database (`db_url`: SQLite in tests/service, PostgreSQL in tests/infra)."""
    eng = migrated_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def storage(engine: Engine) -> GatewayStorage:
    """The gateway's storage adapters on the test's database."""
    return GatewayStorage.on(engine)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/infra needs the machine's servers (or a broker the test starts): marked `infra`."""
    for item in items:
        if "/tests/infra/" in str(item.path):
            item.add_marker(pytest.mark.infra)
