"""Hypothesis strategies of device payloads, from well-formed to hostile, shared by the fuzz tests of each layer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import hypothesis.strategies as st

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DEVICE = "fuzz-printer"
BIRTH = {
    "v": 1,
    "model": "fuzz-1",
    "kind": "printer.laser",
    "firmware": "1",
    "slots": [
        {"slot": "toner", "consumable": "toner.black", "unit": "percent", "capacity": 100},
        {"slot": "waste", "consumable": "waste.toner", "unit": "g", "capacity": 300, "fills_up": True},
    ],
}
REASONS = {"too_large", "not_json", "not_object", "bad_version", "schema", "bad_field", "bad_timestamp", "bad_level", "topic_mismatch"}

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
scalars = st.one_of(st.none(), numbers, st.text(max_size=12), st.sampled_from(["unknown", "some", "NaN", ""]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
timestamps = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
    st.text(max_size=30),
    json_values,
)
# A boot identity: counters in and beyond range, names of the right characters and not, anything else.
boots = st.one_of(
    st.integers(min_value=-2, max_value=2**63 + 1),
    st.text(alphabet="ab0_- \n", min_size=0, max_size=66),
    st.sampled_from(["boot-7", "x" * 64, "x" * 65, "7\n", "7", ""]),
    json_values,
)
slot_names = st.one_of(st.sampled_from(["toner", "waste", "cyan"]), st.text(max_size=40))
telemetry_docs = st.fixed_dictionaries(
    {
        "v": st.one_of(st.just(1), json_values),
        "seq": st.one_of(st.integers(min_value=0, max_value=2**63 - 1), json_values),
        "ts": timestamps,
        "levels": st.one_of(st.dictionaries(slot_names, scalars, max_size=5), json_values),
    },
    optional={"events": st.one_of(st.lists(st.fixed_dictionaries({"type": st.sampled_from(["replaced", "x"]), "slot": slot_names}, optional={"level": scalars}), max_size=3), json_values), "device": st.sampled_from([DEVICE, "someone-else", 7]), "boot": boots},
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    telemetry_docs.map(lambda d: json.dumps(d).encode()),
)


