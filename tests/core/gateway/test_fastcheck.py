"""The hand-written telemetry check of the ingest hot path against the published schema: never more lenient."""

from __future__ import annotations

import json

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from gateway.protocol import validator
from gateway.protocol.fastcheck import telemetry_surely_valid
from tests.payloads import DEVICE, NOW, json_values, telemetry_docs


def test_fast_telemetry_check_is_never_more_lenient_than_the_schema() -> None:
    schema = validator("telemetry")
    accepted = []

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(doc=st.one_of(telemetry_docs, json_values))
    def check(doc: object) -> None:
        doc = json.loads(json.dumps(doc))  # as a device's JSON would arrive
        if telemetry_surely_valid(doc):
            accepted.append(doc)
            assert schema.is_valid(doc), doc

    check()
    good = {"v": 1, "device": DEVICE, "seq": 3, "ts": NOW.isoformat(), "levels": {"toner": 40, "waste": None, "x": "some"}, "events": [{"type": "replaced", "slot": "toner", "level": 100}]}
    assert telemetry_surely_valid(good) and accepted, "the fast path must take ordinary messages"
