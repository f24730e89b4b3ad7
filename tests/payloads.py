"""Hypothesis strategies of device payloads, from well-formed to hostile, shared by the fuzz tests of each layer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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




# ---------------------------------------------------------------- hostile values in every field of every message


@dataclass(frozen=True, slots=True)
class Raw:
    """A JSON fragment written verbatim: what json.dumps cannot say (a raw NUL, invalid UTF-8, NaN, 1e400, deep nesting)."""

    text: bytes


def encode(value: object) -> bytes:
    """A document as a device would send it, with each `Raw` fragment spliced in as it is (keys too)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return b"{" + b",".join(encode(k) + b":" + encode(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encode(v) for v in value) + b"]"
    return json.dumps(value).encode()  # NaN and Infinity come out as those bare tokens


def _nested(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw(b"[" * depth + b"]" * depth)
    return Raw(b'{"a":' * depth + b"1" + b"}" * depth)


# Strings a device should never send in a name: controls (C0, C1, DEL), bidi embeddings, overrides and
# isolates, lone surrogates (escaped; raw, they are not UTF-8), raw NUL and invalid UTF-8 inside the
# quotes, non-characters, long strings. Each is a JSON string fragment, so it may also be a key.
_NASTY_CHARS = "\x00\x01\x07\t\n\x1b\x7f\x85\x9f\u202a\u202e\u2066\u2069\ufeff\ufffe\uffff\U0010ffff"
hostile_strings = st.one_of(
    st.text(alphabet=st.sampled_from(_NASTY_CHARS + "ab-_"), min_size=1, max_size=12).map(lambda s: Raw(json.dumps(s).encode())),  # escaped
    st.text(alphabet=st.sampled_from(_NASTY_CHARS[6:] + "ab"), min_size=1, max_size=12).map(lambda s: Raw(json.dumps(s, ensure_ascii=False).encode())),  # raw UTF-8
    st.sampled_from([b'"a\x00b"', b'"\x00"', b'"a\x01b"', b'"\xed\xa0\x80"', b'"\xff\xfe"', b'"\xc3"', b'"\xf4\x90\x80\x80"', b'"\xc0\xaf"']).map(Raw),  # raw bytes no JSON allows
    st.sampled_from(["\\ud800", "\\udfff", "a\\udc00b", "\\ud83d", "\\udbff\\u0041", "\\u0000", "black\\u0000", "\\u202eblack"]).map(lambda s: Raw(b'"' + s.encode() + b'"')),
    st.sampled_from([33, 65, 129, 4097, 20_000]).flatmap(lambda n: st.sampled_from(["x", "é", "\u202e", "😀"]).map(lambda c: c * n)),
    st.sampled_from(["", " ", "black ", "unknown", "some", "replaced", "percent", "online", "NaN", "null", "1"]),
)
# Numbers a JSON parser may choke on or a database may refuse: integers of hundreds of digits (past
# 2^64, past a double), 1e400 and friends, the NaN and Infinity tokens, subnormals, -0.
hostile_numbers = st.one_of(
    st.integers(min_value=19, max_value=400).flatmap(lambda n: st.sampled_from([b"", b"-"]).map(lambda sign: Raw(sign + b"9" * n))),
    st.sampled_from([b"1e400", b"-1e400", b"1e-400", b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"5e-324", b"-0", b"-0.0", b"1.7976931348623157e308", b"0x10", b"01", b"1.", b".5", b"+1"]).map(Raw),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**64 + 1, -1, 0, 10**20]),
    st.floats(allow_nan=False, allow_infinity=False),
)
# Nesting up to orjson's limit of 1,024 levels (a document is one more) and past it.
hostile_nesting = st.sampled_from([998, 1000, 1022, 1023, 1024, 5000]).flatmap(lambda n: st.sampled_from(["list", "dict"]).map(lambda k: _nested(n, k)))
hostile_shapes = st.one_of(st.sampled_from([None, True, False, [], {}, [1], {"": 1}]), json_values)
# Each kind as likely as the others (st.one_of leans to its first branches and to simple values).
hostile_values = st.sampled_from([hostile_strings, hostile_numbers, hostile_nesting, hostile_shapes]).flatmap(lambda kind: kind)

# Every field of every message a device sends the gateway, as a path into its valid template; "*"
# puts the hostile value in as a key (an odd level key, an unknown field). The messages are also
# tried with the `device` and `boot` fields, which the templates leave out.
HOSTILE_PATHS: dict[str, tuple[tuple[str | int, ...], ...]] = {
    "birth": (
        ("v",), ("model",), ("kind",), ("firmware",), ("device",), ("boot",), ("slots",), ("slots", 0), ("slots", 1),
        ("slots", 0, "slot"), ("slots", 0, "consumable"), ("slots", 0, "unit"), ("slots", 0, "capacity"), ("slots", 1, "fills_up"),
        ("slots", 0, "*"), ("*",),
    ),
    "telemetry": (
        ("v",), ("seq",), ("ts",), ("device",), ("boot",), ("levels",), ("levels", "toner"), ("levels", "*"), ("events",), ("events", 0),
        ("events", 0, "type"), ("events", 0, "slot"), ("events", 0, "level"), ("events", 0, "*"), ("*",),
    ),
    "status": (("v",), ("state",), ("device",), ("*",)),
}  # fmt: skip


def hostile_document(template: dict[str, object], path: tuple[str | int, ...], value: object, key: object) -> bytes:
    """`template` with `value` at `path` (at a "*": a new field named `key`, holding a valid-looking value), encoded."""
    doc = json.loads(json.dumps(template))
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    if path[-1] == "*":
        parent[key] = 50 if path[:-1] == ("levels",) else value
    else:
        parent[path[-1]] = value
    return encode(doc)


hostile_keys = st.one_of(hostile_strings, st.sampled_from(["x", "toner", "v", "__proto__"]))  # each a JSON string
# Whole payloads: not JSON, not an object, an empty one, deep, huge, a valid document with junk after it.
hostile_payloads = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"\x00", b"null", b"[]", b"{}", b'{"v":1}', b"1e400", b"NaN", b'"\xff"', b"\xef\xbb\xbf{}", b'{"v":1,"v":2}', b'{"v": 1}\x00', b'{"v": 1} {"v": 1}']),
    st.sampled_from([1000, 1024, 1025, 30_000]).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([65_536, 65_537, 66_000]).map(lambda n: b'{"v": 1, "pad": "' + b"x" * n + b'"}'),
    hostile_values.map(encode),
)
