"""The broker's ACL (SPEC 3) on Mosquitto with dynamic security: the same checks as on the embedded broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway import MosquittoDynsec, Topics
from tests.helpers import DynsecBroker
from tests.service.test_provisioning import SecuredBroker, test_a_device_can_neither_publish_as_nor_read_another

__all__ = ["test_a_device_can_neither_publish_as_nor_read_another"]


@pytest.fixture(params=["", "tenant-a/site-1"], ids=["no-namespace", "namespace"])
def secured(request: pytest.FixtureRequest, dynsec_broker: DynsecBroker) -> Iterator[SecuredBroker]:
    """Mosquitto with dynamic security, with and without a topic namespace."""
    topics = Topics(request.param)
    yield SecuredBroker("127.0.0.1", dynsec_broker.port, MosquittoDynsec(dynsec_broker.admin, topics=topics), topics)
