"""The fixed vocabulary of device protocol v1 (SPEC 3), each fact defined once; pure values."""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["DEVICE_ID", "MAX_BOOT", "MAX_PAYLOAD", "NAME", "PROTOCOL_VERSION", "SENTINELS", "UNITS", "Unit"]

PROTOCOL_VERSION = 1
# SPEC 3: a device id is 1-64 of [A-Za-z0-9_-]; it is also the device's MQTT username and client
# id. The published schemas (schemas/*.json) repeat it as their `device` pattern, which a test holds
# to this one. Topic namespaces and shared-subscription groups are made of the same names.
NAME = r"[A-Za-z0-9_-]{1,64}"
DEVICE_ID = re.compile(NAME)
# A boot identity (`boot` in birth and telemetry): a boot counter kept in flash, up to the largest
# bigint (the same bound as `seq`), or a name of NAME's characters (a random id made at boot).
MAX_BOOT = 2**63 - 1
Unit = Literal["percent", "ml", "g", "count"]
UNITS: frozenset[str] = frozenset(("percent", "ml", "g", "count"))
# Sentinels real devices send instead of a number (IPP uses -1 unknown, -3 "some remaining").
SENTINELS: frozenset[str] = frozenset(("unknown", "some"))
MAX_PAYLOAD = 64 * 1024  # a birth with dozens of slots is a few KiB; anything larger is abuse
