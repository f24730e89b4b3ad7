"""A hand-written check of telemetry.json for the ingest hot path; pure, no I/O.

jsonschema spends about 175 µs on one telemetry message here, more than everything else in
ingest together. This check costs a few µs. It is never more lenient than the schema: what it
accepts, the schema accepts (tests/core/gateway/test_fastcheck.py checks this on generated documents);
what it does not accept goes through jsonschema, which then words the rejection.
"""

from __future__ import annotations

import math
from typing import Any

from .values import DEVICE_ID, MAX_BOOT, PROTOCOL_VERSION, SENTINELS

__all__ = ["telemetry_surely_valid"]

_MAX_SEQ = 9223372036854775807


def _number(value: Any) -> bool:
    t = type(value)
    return (t is int or t is float) and math.isfinite(value)


def _short(value: Any, limit: int) -> bool:
    return type(value) is str and 0 < len(value) <= limit


def telemetry_surely_valid(doc: Any) -> bool:
    """True only for documents telemetry.json accepts (and with finite numbers)."""
    if type(doc) is not dict or type(doc.get("v")) is not int or doc["v"] != PROTOCOL_VERSION:
        return False
    device = doc.get("device")
    if device is not None and not (type(device) is str and DEVICE_ID.fullmatch(device)):
        return False
    if "device" in doc and device is None:
        return False
    boot = doc.get("boot")
    if boot is None:
        if "boot" in doc:
            return False
    elif not (type(boot) is int and 0 <= boot <= MAX_BOOT) and not (type(boot) is str and DEVICE_ID.fullmatch(boot)):
        return False
    seq, ts, levels = doc.get("seq"), doc.get("ts"), doc.get("levels")
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ or type(ts) is not str or len(ts) > 40:
        return False
    if type(levels) is not dict or not 0 < len(levels) <= 64:
        return False
    for value in levels.values():
        if value is None or (type(value) is str and value in SENTINELS):
            continue
        if not _number(value) or value < 0:
            return False
    if "events" not in doc:
        return True
    events = doc["events"]
    if type(events) is not list or len(events) > 64:
        return False
    for e in events:
        if type(e) is not dict or not _short(e.get("type"), 32) or not _short(e.get("slot"), 32):
            return False
        level = e.get("level")
        if level is not None and not (type(level) is str and level in SENTINELS) and not (_number(level) and level >= 0):
            return False
    return True
