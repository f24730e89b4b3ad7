"""Topic names of device protocol v1 (SPEC 3); pure string work, no I/O.

Every topic is `replenish/v1/devices/{device_id}/{suffix}`. A deployment that shares its broker
with others (or a test on the machine's Mosquitto) may put all of them under a namespace:
`{namespace}/replenish/v1/devices/...`. Devices then publish under the same namespace, and the
ACLs of both brokers are written for it (docs/protocol.md, "Topics").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .values import DEVICE_ID, NAME

__all__ = ["DEFAULT_TOPICS", "PREFIX", "DeviceTopic", "Suffix", "Topics", "parse_topic", "topic_for", "valid_device_id", "valid_namespace"]

PREFIX = "replenish/v1/devices"
Suffix = Literal["birth", "telemetry", "status", "orders"]
SUFFIXES: frozenset[str] = frozenset(("birth", "telemetry", "status", "orders"))
# Levels of [A-Za-z0-9_-], no wildcards, no leading `$` (reserved by brokers) and no empty level.
_NAMESPACE = re.compile(f"{NAME}(/{NAME}){{0,3}}")


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic."""

    device_id: str
    suffix: Suffix


def valid_device_id(device_id: str) -> bool:
    """SPEC section 3: 1-64 characters of [A-Za-z0-9_-]."""
    return DEVICE_ID.fullmatch(device_id) is not None


def valid_namespace(namespace: str) -> bool:
    """Empty (no namespace), or up to four levels of [A-Za-z0-9_-]."""
    return namespace == "" or _NAMESPACE.fullmatch(namespace) is not None


@dataclass(frozen=True, slots=True)
class Topics:
    """The device topics of one deployment: under `namespace`, when it has one."""

    namespace: str = ""

    def __post_init__(self) -> None:
        if not valid_namespace(self.namespace):
            raise ValueError(f"topic namespace must be empty or up to 4 levels of [A-Za-z0-9_-], got {self.namespace!r}")

    @property
    def root(self) -> str:
        """Where every device topic lives: `replenish/v1/devices`, after the namespace if any."""
        return f"{self.namespace}/{PREFIX}" if self.namespace else PREFIX

    def topic(self, device_id: str, suffix: Suffix) -> str:
        """The topic of one device's message kind."""
        if not valid_device_id(device_id):
            raise ValueError(f"invalid device id {device_id!r}")
        return f"{self.root}/{device_id}/{suffix}"

    def every(self, suffix: str) -> str:
        """The filter of one message kind of every device (`+` for the device id)."""
        return f"{self.root}/+/{suffix}"

    def parse(self, topic: str) -> DeviceTopic | None:
        """Split a device topic, or None when it is not one of ours."""
        head, sep, rest = topic.rpartition("/")
        if not sep or rest not in SUFFIXES:
            return None
        root, sep, device_id = head.rpartition("/")
        if not sep or root != self.root or not valid_device_id(device_id):
            return None
        return DeviceTopic(device_id, rest)  # type: ignore[arg-type]


DEFAULT_TOPICS = Topics()


def topic_for(device_id: str, suffix: Suffix) -> str:
    """The topic of one device's message kind, without a namespace."""
    return DEFAULT_TOPICS.topic(device_id, suffix)


def parse_topic(topic: str) -> DeviceTopic | None:
    """Split a device topic without a namespace, or None when it is not one of ours."""
    return DEFAULT_TOPICS.parse(topic)
