"""An invalid retained message comes again at every (re)subscription: it is dead-lettered once, not at each (issue 10)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway import GatewayStorage, IngestOptions, MqttTarget, Topics, WallClock
from replenish.bootstrap import build_ingestor
from tests.helpers import publish_all, wait_for


def _letters(storage: GatewayStorage, topic: str) -> int:
    return sum(1 for d in storage.dead_letters.recent(1000) if d.topic == topic)


def test_a_bad_retained_birth_is_dead_lettered_once_across_workers_and_restarts(storage: GatewayStorage, mqtt_target: MqttTarget, topics: Topics) -> None:
    bad_birth = topics.topic("broken-1", "birth")
    bad_telemetry = topics.topic("broken-1", "telemetry")
    publish_all(mqtt_target, [(bad_birth, b'{"v": 1, "model": "x"}', True)])  # retained, and missing its slots
    for round_ in range(3):  # three workers in turn, each receiving the retained birth when it subscribes
        options = IngestOptions(client_id=f"gw-{round_}-" + uuid.uuid4().hex[:6], topics=topics, mqtt_version=4)
        ingestor = build_ingestor(storage, WallClock(), mqtt_target, options)
        ingestor.start()
        try:
            publish_all(mqtt_target, [(bad_telemetry, b"{not json", False)])  # not retained: each one counts
            assert wait_for(lambda: _letters(storage, bad_telemetry) == round_ + 1, timeout=20)
            assert wait_for(lambda: ingestor.pending == 0, timeout=20)
        finally:
            ingestor.stop()
    assert _letters(storage, bad_birth) == 1
    (letter,) = [d for d in storage.dead_letters.recent(1000) if d.topic == bad_birth]
    assert letter.reason in ("schema", "bad_field") and letter.payload == b'{"v": 1, "model": "x"}'
    assert letter.received_at <= datetime.now(UTC)
