"""Who may do what on the broker (SPEC 3): the rules both brokers enforce, and the port that installs them.

A device publishes only its own `birth`, `telemetry` and `status` and reads only its own
`orders`; the service account (the gateway and the notifier) reads every device topic and
writes `orders`. Pure functions here; `gateway.mqtt.dynsec` installs the rules in Mosquitto
and `gateway.mqtt.embedded_auth` applies them in the embedded broker.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal, Protocol

from .topics import DEFAULT_TOPICS, Topics, valid_device_id

__all__ = [
    "DEVICE_PUBLISHES",
    "SERVICE_PREFIX",
    "SERVICE_USERNAME",
    "Action",
    "BrokerAccess",
    "DeviceSecret",
    "device_may",
    "hash_secret",
    "is_service_name",
    "new_secret",
    "service_may",
    "verify_secret",
]

Action = Literal["publish", "subscribe", "receive"]
DEVICE_PUBLISHES: tuple[str, ...] = ("birth", "telemetry", "status")
# Every MQTT username and client id the service uses starts so (the service account, the gateway
# workers' persistent sessions, the notifier, the dynamic-security admin's runs): no device may
# be one, or it could take over a worker's session and erase the telemetry queued in it.
SERVICE_PREFIX = "replenish-"
SERVICE_USERNAME = "replenish-service"
_SECRET_BYTES = 24  # 192 random bits: no dictionary to guess from, so a fast salted hash suffices


@dataclass(frozen=True, slots=True)
class DeviceSecret:
    """A device's MQTT credentials as issued: the username is the device id."""

    device_id: str
    password: str


class BrokerAccess(Protocol):
    """Installs credentials and ACLs in a broker: Mosquitto's dynamic security or the embedded broker."""

    def grant_service(self, username: str, password: str) -> None:
        """Create or update the service account that ingests telemetry and publishes orders."""
        ...

    def grant_devices(self, devices: list[DeviceSecret]) -> None:
        """Create or update each device's account, allowed only its own topics."""
        ...

    def revoke_device(self, device_id: str) -> None:
        """Remove a device's account; it can no longer connect."""
        ...


def is_service_name(name: str) -> bool:
    """Whether a username or client id is reserved for the service (SERVICE_PREFIX): never a device's."""
    return name.startswith(SERVICE_PREFIX)


def new_secret() -> str:
    """A fresh random password."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str, salt: str | None = None) -> str:
    """`sha256$salt$digest` of a random secret (argon2 is for guessable human passwords)."""
    salt = salt if salt is not None else secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256(f'{salt}:{secret}'.encode()).hexdigest()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether a secret matches its stored hash, in constant time."""
    try:
        scheme, salt, _ = stored.split("$", 2)
    except ValueError:
        return False
    return scheme == "sha256" and hmac.compare_digest(hash_secret(secret, salt), stored)


def _matches(topic_filter: str, topic: str) -> bool:
    """MQTT wildcard match of a concrete topic against a filter (`+` one level, `#` the rest)."""
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def device_may(device_id: str, action: Action, topic: str, topics: Topics = DEFAULT_TOPICS) -> bool:
    """Whether device `device_id` may publish to, subscribe to, or receive on `topic`."""
    if not valid_device_id(device_id):
        return False
    if action == "publish":
        parsed = topics.parse(topic)
        return parsed is not None and parsed.device_id == device_id and parsed.suffix in DEVICE_PUBLISHES
    return topic == topics.topic(device_id, "orders")  # subscribe and receive: its own orders, literally


def service_may(action: Action, topic: str, topics: Topics = DEFAULT_TOPICS) -> bool:
    """Whether the service account may publish to, subscribe to, or receive on `topic`."""
    if topic.startswith("$share/"):
        if action != "subscribe":  # a shared subscription's filter, never a topic anything is sent on
            return False
        topic = topic.split("/", 2)[2] if topic.count("/") >= 2 else ""
    if action == "publish":
        return _matches(topics.every("orders"), topic) and "+" not in topic and "#" not in topic
    return topic.startswith(f"{topics.root}/")
