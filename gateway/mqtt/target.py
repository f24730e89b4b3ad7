"""MQTT connection targets, paho clients for the service's own publishing, and free ports."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

__all__ = ["MqttTarget", "free_port", "new_client", "pick_port"]


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where and as whom to connect."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> MqttTarget:
        """Parse mqtt://user:password@host:port."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"MQTT URL must start with mqtt://, got {url!r}")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    @property
    def url(self) -> str:
        """The target as a URL, without the password."""
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


def new_client(target: MqttTarget, client_id: str, *, clean_session: bool = True, manual_ack: bool = False) -> mqtt.Client:
    """A paho MQTT 3.1.1 client with credentials set, not yet connected."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)  # unbounded: a publish is never dropped while reconnecting
    return client


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pick_port(host: str, wanted: int, tries: int = 50) -> int:
    """`wanted` when free, else the next free port above it; 0 means any free port."""
    if wanted == 0:
        return free_port(host)
    for port in range(wanted, wanted + tries):
        if _port_free(host, port):
            return port
    raise OSError(f"no free port in {wanted}-{wanted + tries - 1} on {host}")
