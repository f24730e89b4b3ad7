"""Topic names of device protocol v1 (SPEC section 3); pure string work, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["PREFIX", "DeviceTopic", "Suffix", "parse_topic", "topic_for", "valid_device_id"]

PREFIX = "replenish/v1/devices"
Suffix = Literal["birth", "telemetry", "status", "orders"]
_SUFFIXES: frozenset[str] = frozenset(("birth", "telemetry", "status", "orders"))
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic."""

    device_id: str
    suffix: Suffix


def valid_device_id(device_id: str) -> bool:
    """SPEC section 3: 1-64 characters of [A-Za-z0-9_-]."""
    return _DEVICE_ID.fullmatch(device_id) is not None


def topic_for(device_id: str, suffix: Suffix) -> str:
    """The topic of one device's message kind."""
    if not valid_device_id(device_id):
        raise ValueError(f"invalid device id {device_id!r}")
    return f"{PREFIX}/{device_id}/{suffix}"


def parse_topic(topic: str) -> DeviceTopic | None:
    """Split a device topic, or None when it is not one of ours."""
    head, sep, rest = topic.rpartition("/")
    if not sep or rest not in _SUFFIXES:
        return None
    prefix, sep, device_id = head.rpartition("/")
    if not sep or prefix != PREFIX or not valid_device_id(device_id):
        return None
    return DeviceTopic(device_id, rest)  # type: ignore[arg-type]
