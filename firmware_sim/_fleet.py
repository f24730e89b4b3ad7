"""Runs simulated devices over MQTT from one thread: QoS 1, retained birth and status, last will,
per-device credentials, connects in waves, reconnects with jittered back-off.

Each device is a pure `SimDevice`; this module only moves its messages to and from a broker on
the fleet's clock (usually an accelerated `SimClock`).
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from ._device import SimDevice
from ._loop import ClientLoop
from ._printer import PrinterProfile
from ._registry import make_device
from ._truth import Message, Quirks

__all__ = ["Fleet", "FleetDevice", "load_credentials", "topic_root"]

log = logging.getLogger(__name__)
PREFIX = "replenish/v1/devices"
BATCH = 2000  # devices advanced per loop turn, so sockets are served in between
BACKOFF_S = (1.0, 60.0)  # reconnect back-off: first and longest delay (real seconds), jittered


class Clock(Protocol):
    """What the fleet needs of a clock."""

    def now(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class FleetDevice:
    """One device to simulate: a `kind` (birth name), or a legacy inkjet `profile` with exact levels (the demo)."""

    device_id: str
    profile: PrinterProfile | None = None
    start_levels: dict[str, float] | None = None
    kind: str = "printer.inkjet"


def load_credentials(path: str | Path) -> dict[str, str]:
    """Device passwords from `{"devices": [{"device_id": ..., "password": ...}, ...]}`."""
    doc = json.loads(Path(path).read_text())
    return {d["device_id"]: d["password"] for d in doc.get("devices", [])}


def topic_root(namespace: str = "") -> str:
    """Where a device's topics live: `replenish/v1/devices`, after the deployment's namespace if any (docs/protocol.md)."""
    return f"{namespace}/{PREFIX}" if namespace else PREFIX


class _Node:
    """A device, its client and its connection state."""

    __slots__ = ("attempts", "client", "device", "held", "pending", "state")

    def __init__(self, device: SimDevice, client: mqtt.Client) -> None:
        self.device, self.client = device, client
        self.state = "down"  # down, connecting, up
        self.held = False  # the model says it is offline: stay away until it says online
        self.attempts = 0
        self.pending: deque[Message] = deque(maxlen=10_000)


class Fleet:
    """Simulated devices publishing telemetry every `interval_hours` of simulated time, all on one thread.

    `credentials` maps device ids to passwords (username = device id); other devices log in as
    `username` / `password`, or anonymously. `wave_size` devices connect every `wave_interval_s`.
    """

    def __init__(
        self, host: str, port: int, devices: list[FleetDevice], clock: Clock, interval_hours: float = 1.0, seed: int = 1, *,
        credentials: Mapping[str, str] | None = None, quirks: Quirks | None = None, wave_size: int = 250,
        wave_interval_s: float = 0.05, keepalive: int = 60, protocol: int = mqtt.MQTTv311,
        username: str | None = None, password: str | None = None, namespace: str = "",
    ) -> None:
        self.host, self.port, self.clock, self.keepalive = host, port, clock, keepalive
        self.root = topic_root(namespace)
        self.wave_size, self.wave_interval_s = max(1, wave_size), wave_interval_s
        self.rng = random.Random(seed)
        self.loop = ClientLoop()
        self.stats = {"connects": 0, "disconnects": 0, "published": 0, "acked": 0, "refused": 0}
        self.nodes: dict[str, _Node] = {}
        start, interval = clock.now(), timedelta(hours=interval_hours)
        credentials = credentials or {}
        for d in devices:
            if d.profile is not None:  # the demo's lively printer: exact levels, no quirks
                p = d.profile
                levels = {s: 100.0 for s in ("black", "cyan", "magenta", "yellow")} | (d.start_levels or {})
                params = {"pages_per_day": p.pages_per_day, "sessions_per_day": p.pages_per_day / p.pages_per_batch}
                device = make_device("printer.inkjet", d.device_id, seed, start, quirks=Quirks.none(), interval=interval, start_levels=levels, params=params)
            else:
                device = make_device(d.kind, d.device_id, seed, start, quirks=quirks, interval=interval, start_levels=d.start_levels)
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=d.device_id, protocol=protocol)
            if d.device_id in credentials:  # SPEC 3: username = device id, its own password
                client.username_pw_set(d.device_id, credentials[d.device_id])
            elif username:
                client.username_pw_set(username, password)
            client.will_set(self._topic(d.device_id, "status"), json.dumps(device.status("offline")), qos=1, retain=True)
            client.max_inflight_messages_set(100)
            client.max_queued_messages_set(0)
            client.user_data_set(d.device_id)
            client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
            client.on_message, client.on_publish = self._on_message, self._on_publish
            self.loop.attach(client)
            self.nodes[d.device_id] = _Node(device, client)
        self._due: list[tuple[float, str]] = [(n.device.t, i) for i, n in self.nodes.items()]
        heapq.heapify(self._due)
        self._real = getattr(clock, "real_seconds", lambda s: s)
        self._farewell: dict[str, int] = {}  # device id -> mid of its goodbye `offline` status
        self._stopping = False

    # -- life cycle ------------------------------------------------------------------------

    def _topic(self, device_id: str, suffix: str) -> str:
        return f"{self.root}/{device_id}/{suffix}"

    def start(self) -> None:
        """Connect every device (in waves) and start publishing."""
        for k, node in enumerate(self.nodes.values()):
            self.loop.call_later((k // self.wave_size) * self.wave_interval_s, lambda n=node: self._connect(n))
        self.loop.call_later(0.0, self._advance)
        self.loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Say `offline` (retained, no last will), disconnect every device and stop the loop."""
        self.loop.call_soon(self._goodbye)
        deadline = time.monotonic() + timeout
        while self.loop.open_clients and time.monotonic() < deadline:
            time.sleep(0.05)
        self.loop.stop(timeout)

    def _goodbye(self) -> None:
        self._stopping = True
        for node in self.nodes.values():
            node.held = True
            if node.state == "up":  # disconnect once the broker has the retained `offline` (see _on_publish)
                info = node.client.publish(self._topic(node.device.device_id, "status"), json.dumps(node.device.status("offline")), qos=1, retain=True)
                self._farewell[node.device.device_id] = info.mid
            else:
                node.client.disconnect()
        self.loop.call_later(5.0, self._disconnect_all)

    def _disconnect_all(self) -> None:
        for node in self.nodes.values():
            node.client.disconnect()


    @property
    def connected(self) -> int:
        """How many devices are connected now."""
        return sum(1 for n in self.nodes.values() if n.state == "up")

    def devices(self) -> dict[str, SimDevice]:
        """The pure models behind the fleet (read their `truth()` for ground truth)."""
        return {i: n.device for i, n in self.nodes.items()}

    def publish_round(self) -> None:
        """Make every device report its levels now (thread-safe; used to measure one round)."""

        def run() -> None:
            now = self.clock.now()
            for node in self.nodes.values():
                node.device.advance(now)
                self._send(node, Message("telemetry", node.device.telemetry(node.device.t), node.device.t))

        self.loop.call_soon(run)

    # -- connections -----------------------------------------------------------------------

    def _connect(self, node: _Node) -> None:
        if self._stopping or node.held or node.state != "down":
            return
        node.state = "connecting"
        try:
            node.client.connect_async(self.host, self.port, self.keepalive)
            node.client.reconnect()
        except OSError as exc:
            log.debug("%s: connect failed: %s", node.device.device_id, exc)
            node.state = "down"
            self._retry(node)

    def _retry(self, node: _Node) -> None:
        node.attempts += 1
        delay = min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** min(node.attempts - 1, 10)) * self.rng.uniform(0.5, 1.0)
        self.loop.call_later(delay, lambda: self._connect(node))

    def _on_connect(self, client: mqtt.Client, device_id: str, _f: Any, reason: mqtt.ReasonCode, _p: Any) -> None:
        node = self.nodes[device_id]
        if reason.is_failure:
            self.stats["refused"] += 1
            log.warning("%s: broker refused the connection: %s", device_id, reason)
            return
        node.state, node.attempts = "up", 0
        self.stats["connects"] += 1
        client.subscribe(self._topic(device_id, "orders"), qos=1)
        client.publish(self._topic(device_id, "birth"), json.dumps(node.device.birth()), qos=1, retain=True)
        client.publish(self._topic(device_id, "status"), json.dumps(node.device.status("online")), qos=1, retain=True)
        while node.pending and node.state == "up":
            self._send(node, node.pending.popleft())

    def _on_disconnect(self, _c: mqtt.Client, device_id: str, _f: Any, _r: Any, _p: Any) -> None:
        node = self.nodes[device_id]
        was = node.state
        node.state = "down"
        self.stats["disconnects"] += 1
        if not node.held and not self._stopping:
            if was == "up":
                node.attempts = 0
            self._retry(node)

    def _on_publish(self, client: mqtt.Client, device_id: str, mid: int, _r: Any, _p: Any) -> None:
        self.stats["acked"] += 1
        if self._farewell.get(device_id) == mid:  # a DISCONNECT racing the PUBACK upsets some brokers (amqtt)
            del self._farewell[device_id]
            client.disconnect()

    def _on_message(self, _c: mqtt.Client, device_id: str, msg: mqtt.MQTTMessage) -> None:
        node = self.nodes[device_id]
        for m in node.device.on_orders(msg.payload, self.clock.now()):
            self._dispatch(node, m)

    # -- the models ------------------------------------------------------------------------

    def _advance(self) -> None:
        """Advance the devices whose next message is due; come back when the next one is."""
        if self._stopping:
            return
        now = self.clock.now()
        end = now.timestamp()
        for _ in range(BATCH):
            if not self._due or self._due[0][0] > end:
                break
            _, device_id = heapq.heappop(self._due)
            node = self.nodes[device_id]
            for m in node.device.advance(now):
                self._dispatch(node, m)
            heapq.heappush(self._due, (node.device.next_message_at(), device_id))
        if self._stopping:
            return
        wait = 0.0 if self._due and self._due[0][0] <= end else 0.5
        if self._due and self._due[0][0] > end:
            wait = min(0.5, max(0.005, self._real(self._due[0][0] - end)))
        self.loop.call_later(wait, self._advance)

    def _dispatch(self, node: _Node, m: Message) -> None:
        if m.suffix == "telemetry":
            self._send(node, m)
        elif m.suffix == "status" and m.will:  # offline spell or reboot: drop without a goodbye
            node.held = True
            if node.state != "down":
                self.loop.drop(node.client)
                node.state = "down"
        elif m.suffix == "status" and node.held:  # back online: reconnect (birth and status on connect)
            node.held = False
            self._connect(node)
        # A model's own birth and online status are published by `_on_connect` on every connect.

    def _send(self, node: _Node, m: Message) -> None:
        if self._stopping:  # nothing after the goodbye: a PUBLISH racing the DISCONNECT upsets amqtt
            return
        if node.state != "up":
            node.pending.append(m)
            return
        node.client.publish(self._topic(node.device.device_id, m.suffix), json.dumps(m.payload), qos=1, retain=m.retain)
        self.stats["published"] += 1
