"""The embedded MQTT broker (amqtt), on a thread of its own: what runs when no broker URL is configured."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from .target import MqttTarget, pick_port

if TYPE_CHECKING:
    from .embedded_auth import EmbeddedAccess

__all__ = ["EmbeddedBroker"]

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """An in-process amqtt broker on its own thread and event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        access: EmbeddedAccess | None = None,
        *,
        max_packet_size: int | None = None,
        max_queued_messages: int | None = None,
        max_queued_bytes: int | None = None,
    ) -> None:
        """Mosquitto's limits default to the shipped config's (`embedded_limits`); a test may lower them."""
        self.host = host
        limits = {"max_packet_size": max_packet_size, "max_queued_messages": max_queued_messages, "max_queued_bytes": max_queued_bytes}
        self.limits = {name: value for name, value in limits.items() if value is not None}
        self.access = access  # None: anonymous clients allowed (tests of the protocol alone)
        self.requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: object | None = None

    @property
    def dropped(self) -> int:
        """Messages dropped because an offline session's queue was full (Mosquitto's $SYS/broker/publish/messages/dropped)."""
        return int(getattr(self._broker, "dropped", 0))

    @property
    def target(self) -> MqttTarget:
        """Where clients connect."""
        return MqttTarget(self.host, self.port)

    def start(self) -> int:
        """Start listening; returns the port actually used."""
        from .embedded_auth import ScopedRetainBroker as Broker  # imported here: only embedded runs need it

        self.port = pick_port(self.host, self.requested_port)
        ready = threading.Event()
        failure: list[BaseException] = []
        # amqtt 0.12 has no limits of its own; the broker class adds Mosquitto's packet-size and
        # offline-queue limits (embedded_limits.py; docs/deploy.md, "Broker limits").
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 50_000}},
            # Mosquitto's persistent_client_expiration: a persistent session left for two weeks is
            # deleted, longer than the 7 days devices buffer and the gateway's session lasts.
            "session_expiry_interval": 14 * 86_400,
            "plugins": (
                {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
                if self.access is None
                # SPEC 3: the same per-device credentials and ACL as Mosquitto's dynamic security.
                else {f"{__package__}.embedded_auth.DeviceAuthPlugin": {"access": self.access}, f"{__package__}.embedded_auth.DeviceTopicPlugin": {"access": self.access}}
            ),
        }

        async def serve() -> None:
            broker = Broker(config)
            for name, value in self.limits.items():
                setattr(broker, name, value)
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
