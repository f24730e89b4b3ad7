"""Mosquitto's limits in the embedded broker (amqtt 0.12, which has none of its own): docs/deploy.md, "Broker limits".

- `max_packet_size`: a client whose packet announces more bytes than this is disconnected as soon
  as the packet's length has been read, before its body is; amqtt would otherwise read any packet
  whole, up to MQTT's 256 MB. The disconnect is an end of stream to amqtt, so the client's last
  will is published, as Mosquitto does.
- `max_queued_messages` and `max_queued_bytes`: what an offline persistent session may hold (a
  gateway worker's, while it restarts). Past either, a message for that session is dropped,
  logged and counted, as Mosquitto drops it; amqtt's queue was unbounded.

Each value is the shipped Mosquitto config's (deploy/mosquitto/mosquitto.conf), so the laptop demo
and the tests meet the limits a fleet meets. amqtt has no in-flight window to bound (it sends
without waiting for acknowledgements) and no maximum keep-alive.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from amqtt.adapters import ReaderAdapter
from amqtt.broker import Broker
from amqtt.session import Session as MqttSession

__all__ = ["MAX_PACKET_SIZE", "MAX_QUEUED_BYTES", "MAX_QUEUED_MESSAGES", "LimitedBroker", "PacketLimitReader"]

log = logging.getLogger(__name__)

MAX_PACKET_SIZE = 67_584  # 66 KiB: a 64 KiB payload on the longest topic, and room for MQTT 5 properties
MAX_QUEUED_MESSAGES = 1_000_000  # about 10 hours of a 100,000-device fleet reporting hourly
MAX_QUEUED_BYTES = 268_435_456  # 256 MiB of payloads: binds on a session filling with large junk


class PacketLimitReader(ReaderAdapter):
    """A reader that follows MQTT's framing and ends the stream at a packet longer than `limit` bytes.

    amqtt reads a fixed header a byte at a time and then the body in one read; this sees every
    byte pass, so it knows each packet's length before amqtt asks for the body.
    """

    __slots__ = ("_body", "_inner", "_length", "_shift", "_state", "limit", "refused")

    def __init__(self, inner: ReaderAdapter, limit: int) -> None:
        self._inner = inner
        self.limit = limit
        self.refused: int | None = None  # the length of the packet refused, once one was
        self._state = 0  # 0: expecting a packet's first byte, 1: its remaining length, 2: its body
        self._length = self._shift = self._body = 0

    async def read(self, n: int = -1) -> bytes:
        """Bytes as the inner reader gives them, or b"" (end of stream) from a packet over the limit on."""
        if self.refused is not None:
            return b""
        data = await self._inner.read(n)
        pos, end = 0, len(data)
        while pos < end:
            if self._state == 2:
                step = min(self._body, end - pos)
                self._body -= step
                pos += step
                if not self._body:
                    self._state = 0
                continue
            byte = data[pos]
            pos += 1
            if self._state == 0:
                self._state, self._length, self._shift = 1, 0, 0
                continue
            self._length |= (byte & 0x7F) << self._shift
            self._shift += 7
            if byte & 0x80:
                continue
            header = 1 + self._shift // 7  # the type byte and the remaining length's bytes
            if header + self._length > self.limit:
                self.refused = header + self._length
                return b""
            self._state, self._body = (2, self._length) if self._length else (0, 0)
        return data

    def feed_eof(self) -> None:
        """Pass the end of stream on."""
        self._inner.feed_eof()


class LimitedBroker(Broker):  # type: ignore[misc]
    """amqtt's broker with Mosquitto's packet and offline-queue limits (set on the instance before it starts)."""

    max_packet_size = MAX_PACKET_SIZE
    max_queued_messages = MAX_QUEUED_MESSAGES
    max_queued_bytes = MAX_QUEUED_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued_bytes: defaultdict[str, int] = defaultdict(int)  # client id -> payload bytes queued offline
        self.dropped = 0  # messages dropped for a full offline session, as Mosquitto's $SYS/.../dropped

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter, writer: Any) -> None:
        limited = PacketLimitReader(reader, self.max_packet_size)
        try:
            await super()._client_connected(listener_name, limited, writer)
        finally:
            if limited.refused is not None:
                log.warning("embedded broker disconnected %s: a packet of %d bytes (max_packet_size %d)", writer.get_peer_info(), limited.refused, self.max_packet_size)

    async def _retain_broadcast_message(self, broadcast: dict[str, Any], qos: int, target_session: MqttSession) -> None:
        client_id = target_session.client_id
        size = len(broadcast.get("data") or b"")
        if target_session.retained_messages.qsize() >= self.max_queued_messages or self._queued_bytes[client_id] + size > self.max_queued_bytes:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("embedded broker: outgoing messages are being dropped for client %s (its offline queue is full; %d dropped)", client_id, self.dropped)
            return
        self._queued_bytes[client_id] += size
        await super()._retain_broadcast_message(broadcast, qos, target_session)

    async def _publish_session_retained_messages(self, session: MqttSession) -> None:
        self._queued_bytes.pop(session.client_id, None)  # the whole queue is handed over now
        await super()._publish_session_retained_messages(session)
