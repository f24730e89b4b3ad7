"""A lean MQTT subscriber for ingest: QoS 1 deliveries that the caller acknowledges after its commit.

Why not paho or gmqtt: the gateway must receive faster than a bare paho subscriber parses JSON,
and acknowledge each message only after its batch has committed. paho spends about 40 µs per
message in its own packet handling; gmqtt acknowledges after the callback returns, so a late
acknowledgement costs an asyncio Task per message. Reading frames straight off the socket costs
a few µs per message and lets one write carry the acknowledgements of a whole batch
(docs/benchmarks.md, "Ingest"). This speaks only what a subscriber needs: CONNECT (MQTT 3.1.1
or 5), SUBSCRIBE, inbound PUBLISH at QoS 0/1, PUBACK, PINGREQ and DISCONNECT.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from ..metrics import CONNECTION_LOSSES
from .target import MqttTarget

__all__ = ["V5", "V311", "Delivery", "IngestConnection", "MqttRefused", "SessionTakenOver"]

log = logging.getLogger(__name__)

V311, V5 = 4, 5
# A session outlives a worker's restart or upgrade; devices buffer up to a week (docs/protocol.md).
SESSION_EXPIRY_S = 7 * 86400
_V5_PROBE_S = 3.0  # the embedded broker (amqtt) never answers an MQTT 5 CONNECT; then we speak 3.1.1
_RECV = 1 << 18
_PUBLISH, _CONNACK, _SUBACK, _PINGRESP, _DISCONNECT = 3, 2, 9, 13, 14
_PROTOCOL_REFUSED = {1, 0x84}  # "unacceptable protocol version" in 3.1.1 and in 5
_TAKEN_OVER = 0x8E  # MQTT 5 DISCONNECT "session taken over": another client connected with our client id


class SessionTakenOver(ConnectionError):
    """The broker ended our session because another client connected with the same client id."""


class BrokerDisconnected(ConnectionError):
    """The broker sent DISCONNECT with a reason other than a takeover."""


class MqttRefused(ConnectionError):
    """The broker refused our connection or a subscription; retrying will not help."""


class Delivery(NamedTuple):
    """One inbound PUBLISH; `session` numbers the connection it came on (its `mid` is valid only there)."""

    topic: str
    payload: bytes
    mid: int  # 0 for QoS 0
    received_at: datetime  # on the service's clock (which the demo accelerates)
    session: int
    arrived: float  # time.monotonic() when it was read off the socket: what latency is measured from
    retain: bool = False  # a retained message, sent again at every (re)subscription


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _frame(kind: int, body: bytes) -> bytes:
    return bytes((kind,)) + _varint(len(body)) + body


def _utf8(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            return -1, pos
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ConnectionError("malformed MQTT remaining length")


def connect_packet(client_id: str, version: int, target: MqttTarget, keepalive: int, receive_maximum: int) -> bytes:
    """CONNECT for a persistent session: clean_session=0 (3.1.1) or clean_start=0 with a session expiry (5)."""
    flags = 0
    payload = _utf8(client_id)
    if target.username:
        flags |= 0x80
        payload += _utf8(target.username)
        if target.password is not None:
            flags |= 0x40
            payload += _utf8(target.password)
    head = _utf8("MQTT") + bytes((version, flags)) + struct.pack("!H", keepalive)
    if version == V5:
        props = b"\x11" + struct.pack("!I", SESSION_EXPIRY_S) + b"\x21" + struct.pack("!H", receive_maximum)
        head += _varint(len(props)) + props
    return _frame(0x10, head + payload)


def subscribe_packet(filters: Sequence[str], version: int, mid: int = 1) -> bytes:
    """SUBSCRIBE every filter at QoS 1 (MQTT 5: retained messages only for a subscription that is new)."""
    body = struct.pack("!H", mid) + (b"\x00" if version == V5 else b"")
    # Retain Handling 1: a reconnecting worker does not get every device's retained birth again.
    options = b"\x11" if version == V5 else b"\x01"
    for f in filters:
        body += _utf8(f) + options
    return _frame(0x82, body)


class IngestConnection:
    """Keeps one subscriber connection up (reconnecting with back-off) and queues what arrives."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        filters: Sequence[str],
        now: Callable[[], datetime],
        *,
        version: int | None = None,
        receive_maximum: int = 4000,
        keepalive: int = 30,
    ) -> None:
        if version not in (None, V311, V5):
            raise ValueError("MQTT version must be 4 (3.1.1), 5 or None (5 when the broker speaks it)")
        self.target, self.client_id, self.filters, self._now = target, client_id, tuple(filters), now
        self.version = version
        self._probe = version is None
        self.receive_maximum = max(1, min(receive_maximum, 0xFFFF))
        self.keepalive = keepalive
        self._inbox: list[Delivery] = []
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._session = 0
        self._closing = threading.Event()
        self._ready = threading.Event()
        self._fatal: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._leftover = b""

    # -- the caller's side -------------------------------------------------------------------

    def start(self, timeout: float) -> None:
        """Connect and subscribe; raises MqttRefused, or TimeoutError when the broker is away."""
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._fatal is not None:
            raise self._fatal
        if not self._ready.is_set():
            self.close()
            raise TimeoutError(f"could not connect to MQTT at {self.target.url} as {self.client_id}")

    @property
    def queued(self) -> int:
        """Deliveries received and not yet taken."""
        return len(self._inbox)

    def oldest(self) -> float | None:
        """When the oldest delivery not yet taken arrived (time.monotonic()), if any waits."""
        inbox = self._inbox
        return inbox[0].arrived if inbox else None

    def take(self, limit: int, wait: float, idle: float) -> list[Delivery]:
        """Up to `limit` deliveries: waits `idle` for a first one, then up to `wait` for more."""
        with self._cond:
            if not self._inbox:
                self._cond.wait(idle)
            if self._inbox and len(self._inbox) < limit and wait > 0:
                deadline = time.monotonic() + wait
                while len(self._inbox) < limit and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            if len(self._inbox) <= limit:
                batch, self._inbox = self._inbox, []
            else:  # copying the rest into a new list, tens of thousands deep, cost ~3 µs a message
                batch = self._inbox[:limit]
                del self._inbox[:limit]
        return batch

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """PUBACK the QoS 1 deliveries of the current connection in one write.

        A delivery from an earlier connection is not acknowledged: its packet id may since have
        been reused, and the broker redelivers it anyway (the database ignores the duplicate).
        """
        session = self._session
        frames = b"".join(b"\x40\x02" + d.mid.to_bytes(2, "big") for d in deliveries if d.mid and d.session == session)
        if frames:
            self._send(frames, session)

    def close(self) -> None:
        """Disconnect (keeping the broker-side session) and stop reconnecting."""
        self._closing.set()
        sock = self._sock
        if sock is not None:
            try:
                self._send(b"\xe0\x00", self._session)
            finally:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(10)
        with self._cond:
            self._cond.notify_all()

    # -- the connection thread ---------------------------------------------------------------

    def _send(self, data: bytes, session: int) -> None:
        with self._send_lock:
            sock = self._sock
            if sock is None or session != self._session:
                return
            try:
                sock.sendall(data)
            except OSError as exc:
                log.warning("MQTT write failed: %s", exc)

    def _run(self) -> None:
        delay = 1.0
        while not self._closing.is_set():
            try:
                self._connect()
                delay = 1.0
                self._read_loop()
            except MqttRefused as exc:
                log.error("%s", exc)
                if not self._ready.is_set():  # refused at start: tell the caller instead of retrying
                    self._fatal = exc
                    self._ready.set()
                    return
            except SessionTakenOver as exc:
                # Every service client id is reserved (no device may be named so), so this is a
                # second worker configured with our id, or an intruder with the service's password.
                CONNECTION_LOSSES.labels("taken_over").inc()
                if not self._closing.is_set():
                    log.error("MQTT session at %s lost: %s; reconnecting in %.0f s (check REPLENISH_GATEWAY_CLIENT_ID is unique)", self.target.url, exc, delay)
            except (OSError, ConnectionError) as exc:
                if not self._closing.is_set():
                    CONNECTION_LOSSES.labels("disconnected" if isinstance(exc, BrokerDisconnected) else "lost").inc()
                    log.warning("MQTT connection to %s lost: %s; reconnecting in %.0f s", self.target.url, exc, delay)
            finally:
                self._drop_socket()
            if self._closing.wait(delay):
                return
            delay = min(delay * 2, 30.0)

    def _drop_socket(self) -> None:
        with self._send_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _connect(self) -> None:
        version = self.version or V5
        sock = socket.create_connection((self.target.host, self.target.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first_v5 = version == V5 and not self._ready.is_set()
        sock.settimeout(_V5_PROBE_S if first_v5 else 10)
        sock.sendall(connect_packet(self.client_id, version, self.target, self.keepalive, self.receive_maximum))
        try:
            head, body, rest = self._read_packet(sock, b"")
        except (TimeoutError, ConnectionError) as exc:
            sock.close()
            if self._probe:  # no MQTT 5 here: fall back to 3.1.1 right away
                log.info("MQTT broker at %s did not answer an MQTT 5 CONNECT (%s); using 3.1.1", self.target.url, exc)
                self.version, self._probe = V311, False
                return self._connect()
            if first_v5:
                raise MqttRefused(f"MQTT broker at {self.target.url} did not answer an MQTT 5 CONNECT ({exc or 'timed out'})") from None
            raise
        code = body[1] if len(body) > 1 else 0xFF
        if head >> 4 != _CONNACK or code != 0:
            sock.close()
            if self._probe and code in _PROTOCOL_REFUSED:
                self.version, self._probe = V311, False
                return self._connect()
            raise MqttRefused(f"MQTT broker at {self.target.url} refused {self.client_id!r}: connect return code {code:#x}")
        self.version, self._probe = version, False
        # Subscribing again on every connection is harmless; Mosquitto may send the session's
        # queued messages before the SUBACK, so the read loop checks the SUBACK.
        sock.sendall(subscribe_packet(self.filters, version))
        with self._send_lock:
            self._sock = sock
            self._session += 1
        self._leftover = rest

    def _check_suback(self, body: bytes, v5: bool) -> None:
        codes = body[2:]
        if v5:
            plen, pos = _read_varint(body, 2)
            codes = body[pos + plen :]
        refused = [f for f, c in zip(self.filters, codes, strict=False) if c >= 0x80]
        if refused:
            raise MqttRefused(f"MQTT broker at {self.target.url} refused the subscriptions {refused} (codes {codes.hex()})")
        self._ready.set()
        log.info("ingest subscribed at %s as %s (MQTT %s)", self.target.url, self.client_id, "5" if v5 else "3.1.1")

    def _read_packet(self, sock: socket.socket, buf: bytes) -> tuple[int, bytes, bytes]:
        while True:
            if len(buf) >= 2:
                length, pos = _read_varint(buf, 1)
                if length >= 0 and len(buf) >= pos + length:
                    return buf[0], buf[pos : pos + length], buf[pos + length :]
            chunk = sock.recv(_RECV)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk

    def _read_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        buf, session, v5 = self._leftover, self._session, self.version == V5
        ping_every = max(self.keepalive / 2, 1.0)
        sock.settimeout(ping_every)
        last_ping = last_heard = time.monotonic()
        while not self._closing.is_set():
            if buf:
                buf = self._parse(buf, session, v5)
            try:
                chunk = sock.recv(_RECV)
            except TimeoutError:
                chunk = None
            now = time.monotonic()
            if chunk == b"":
                raise ConnectionError("broker closed the connection")
            if chunk:
                buf += chunk
                last_heard = now
            elif now - last_heard > self.keepalive * 1.5:
                raise ConnectionError("no PINGRESP from the broker")
            if now - last_ping >= ping_every:
                self._send(b"\xc0\x00", session)
                last_ping = now

    def _parse(self, buf: bytes, session: int, v5: bool) -> bytes:
        """Queue every complete PUBLISH in `buf`; returns the incomplete tail."""
        out: list[Delivery] = []
        received_at = self._now()
        arrived = time.monotonic()
        pos, n = 0, len(buf)
        while n - pos >= 2:
            head = buf[pos]
            length, start = _read_varint(buf, pos + 1)
            end = start + length
            if length < 0 or end > n:
                break
            kind = head >> 4
            if kind == _PUBLISH:
                qos = (head >> 1) & 3
                j = start + 2 + ((buf[start] << 8) | buf[start + 1])
                topic = buf[start + 2 : j].decode("utf-8", "replace")
                mid = 0
                if qos:
                    if qos > 1:  # we subscribe at QoS 1, so a compliant broker never sends QoS 2
                        raise ConnectionError("broker sent a QoS 2 PUBLISH to a QoS 1 subscription")
                    mid = (buf[j] << 8) | buf[j + 1]
                    j += 2
                if v5:
                    plen, j = _read_varint(buf, j)
                    j += plen
                out.append(Delivery(topic, buf[j:end], mid, received_at, session, arrived, bool(head & 1)))
            elif kind == _SUBACK:
                self._check_suback(buf[start:end], v5)
            elif kind == _DISCONNECT:
                reason = buf[start] if length else 0
                if reason == _TAKEN_OVER:
                    raise SessionTakenOver(f"another client connected as {self.client_id!r} and took over our session")
                raise BrokerDisconnected(f"broker sent DISCONNECT (reason {reason:#x})")
            pos = end
        if out:
            with self._cond:
                self._inbox += out
                self._cond.notify()
        return buf[pos:]
