"""MQTT connection targets and the embedded broker (amqtt) used when no broker URL is configured."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

if TYPE_CHECKING:
    from ._embedded_auth import EmbeddedAccess

__all__ = ["EmbeddedBroker", "MqttTarget", "free_port", "new_client", "pick_port"]

log = logging.getLogger(__name__)


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


class EmbeddedBroker:
    """An in-process amqtt broker on its own thread and event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, access: EmbeddedAccess | None = None) -> None:
        self.host = host
        self.access = access  # None: anonymous clients allowed (tests of the protocol alone)
        self.requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: object | None = None

    @property
    def target(self) -> MqttTarget:
        """Where clients connect."""
        return MqttTarget(self.host, self.port)

    def start(self) -> int:
        """Start listening; returns the port actually used."""
        from ._embedded_auth import ScopedRetainBroker as Broker  # imported here: only embedded runs need it

        self.port = pick_port(self.host, self.requested_port)
        ready = threading.Event()
        failure: list[BaseException] = []
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 50_000}},
            "plugins": (
                {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
                if self.access is None
                # SPEC 3: the same per-device credentials and ACL as Mosquitto's dynamic security.
                else {f"{__package__}._embedded_auth.DeviceAuthPlugin": {"access": self.access}, f"{__package__}._embedded_auth.DeviceTopicPlugin": {"access": self.access}}
            ),
        }

        async def serve() -> None:
            broker = Broker(config)
            try:
                await broker.start()
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            self._broker = broker
            ready.set()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(serve())
            if not failure:
                loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="embedded-mqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise RuntimeError(f"embedded MQTT broker failed to start on port {self.port}") from failure[0]
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)
        return self.port

    def stop(self) -> None:
        """Stop the broker and its thread."""
        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)  # type: ignore[attr-defined]
        try:
            fut.result(10)
        except Exception:  # noqa: BLE001 - shutting down regardless
            log.warning("embedded broker did not shut down cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(10)
        self._broker = None
