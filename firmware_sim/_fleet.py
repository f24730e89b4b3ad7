"""Runs simulated devices over MQTT: QoS 1, retained birth, last will, reconnect with back-off."""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from ._clock import SimClock
from ._printer import InkjetPrinter, PrinterProfile

__all__ = ["Fleet", "FleetDevice"]

log = logging.getLogger(__name__)
PREFIX = "replenish/v1/devices"


@dataclass(frozen=True, slots=True)
class FleetDevice:
    """One device to simulate."""

    device_id: str
    profile: PrinterProfile
    start_levels: dict[str, float] | None = None


class Fleet:
    """Simulated printers publishing telemetry every `interval_hours` of simulated time."""

    def __init__(self, host: str, port: int, devices: list[FleetDevice], clock: SimClock, interval_hours: float = 1.0, seed: int = 1) -> None:
        self.host, self.port, self.clock, self.interval_hours = host, port, clock, interval_hours
        rng = random.Random(seed)
        self.printers = []
        for d in devices:
            p = InkjetPrinter(d.device_id, d.profile, random.Random(rng.random()))
            if d.start_levels:
                p.levels.update(d.start_levels)
            self.printers.append(p)
        self._clients: dict[str, mqtt.Client] = {}
        self._seen: dict[str, set[str]] = {p.device_id: set() for p in self.printers}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _topic(self, device_id: str, suffix: str) -> str:
        return f"{PREFIX}/{device_id}/{suffix}"

    def start(self) -> None:
        """Connect every device and start publishing."""
        for p in self.printers:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=p.device_id, protocol=mqtt.MQTTv311)
            c.will_set(self._topic(p.device_id, "status"), json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)
            c.reconnect_delay_set(1, 60)
            c.on_connect = self._on_connect(p)
            c.on_message = self._on_message(p)
            c.connect_async(self.host, self.port, keepalive=60)
            c.loop_start()
            self._clients[p.device_id] = c
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()

    def _on_connect(self, p: InkjetPrinter):  # type: ignore[no-untyped-def]
        def handler(c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
            if reason.is_failure:
                return
            c.subscribe(self._topic(p.device_id, "orders"), qos=1)
            c.publish(self._topic(p.device_id, "birth"), json.dumps(p.birth()), qos=1, retain=True)
            c.publish(self._topic(p.device_id, "status"), json.dumps({"v": 1, "state": "online"}), qos=1, retain=True)

        return handler

    def _on_message(self, p: InkjetPrinter):  # type: ignore[no-untyped-def]
        def handler(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with self._lock:
                events = p.on_orders(msg.payload, self._seen[p.device_id])
                if events:
                    c.publish(self._topic(p.device_id, "telemetry"), json.dumps(p.telemetry(self.clock.now(), events)), qos=1)

        return handler

    def _run(self) -> None:
        while not self._stop.wait(self.clock.real_seconds(self.interval_hours * 3600)):
            now = self.clock.now()
            with self._lock:
                for p in self.printers:
                    p.use(self.interval_hours)
                    self._clients[p.device_id].publish(self._topic(p.device_id, "telemetry"), json.dumps(p.telemetry(now)), qos=1)

    def stop(self) -> None:
        """Stop publishing and disconnect (cleanly: no last will)."""
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        for c in self._clients.values():
            c.publish(self._topic(c._client_id.decode(), "status"), json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)  # noqa: SLF001
            c.disconnect()
            c.loop_stop()
