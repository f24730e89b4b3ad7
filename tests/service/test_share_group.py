"""A gateway worker asked to share telemetry on a broker that cannot (the embedded one speaks MQTT 3.1.1) says so."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gateway import EmbeddedBroker, GatewayStorage, IngestOptions, WallClock
from replenish.bootstrap import build_ingestor
from tests.helpers import migrated_engine


def test_share_group_on_the_embedded_broker_fails_clearly(tmp_path: Path) -> None:
    broker = EmbeddedBroker(port=0)
    broker.start()
    try:
        engine = migrated_engine(f"sqlite:///{tmp_path / 'gw.db'}")
        options = IngestOptions(client_id="gw-" + uuid.uuid4().hex[:8], share_group="replenish")
        ingestor = build_ingestor(GatewayStorage.on(engine), WallClock(), broker.target, options)
        with pytest.raises(ConnectionError, match="MQTT 5"):
            ingestor.start(timeout=15)
        ingestor.stop()
    finally:
        broker.stop()
    with pytest.raises(ValueError):
        IngestOptions(share_group="a/b")
    with pytest.raises(ValueError):
        IngestOptions(share_group="g", mqtt_version=4)
