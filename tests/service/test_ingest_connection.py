"""Ingest's own MQTT subscriber, frame by frame: what a broker's DISCONNECT tells it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import IngestConnection, MqttTarget
from gateway.mqtt.ingest_connection import BrokerDisconnected, SessionTakenOver


def _conn() -> IngestConnection:
    return IngestConnection(MqttTarget("127.0.0.1", 1), "replenish-gateway-t", ("x/#",), lambda: datetime.now(UTC), version=5)


def test_a_disconnect_for_a_session_taken_over_is_told_apart_from_others() -> None:
    with pytest.raises(SessionTakenOver, match="took over our session"):
        _conn()._parse(b"\xe0\x02\x8e\x00", 1, True)  # MQTT 5 DISCONNECT, reason 0x8E, no properties
    with pytest.raises(ConnectionError, match="reason 0x8b") as other:
        _conn()._parse(b"\xe0\x02\x8b\x00", 1, True)  # 0x8B: server shutting down
    assert isinstance(other.value, BrokerDisconnected) and not isinstance(other.value, SessionTakenOver)
