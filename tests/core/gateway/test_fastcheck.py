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


def test_a_message_with_a_good_boot_stays_on_the_fast_path_and_a_bad_one_leaves_it() -> None:
    base = {"v": 1, "seq": 3, "ts": NOW.isoformat(), "levels": {"toner": 40}}
    for boot in (0, 7, 2**63 - 1, "a", "boot-7_X", "x" * 64, "7"):
        assert telemetry_surely_valid({**base, "boot": boot}), boot
    for boot in (-1, 2**63, 3.0, True, None, "", "x" * 65, "a b", "7\n", "é", [1], {"n": 1}):
        assert not telemetry_surely_valid({**base, "boot": boot}), boot
