"""Tells devices about their orders on the retained `orders` topic."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from ..protocol import DEFAULT_TOPICS, Topics, orders_payload
from .target import MqttTarget, new_client

__all__ = ["DeviceNotifier"]

log = logging.getLogger(__name__)


class DeviceNotifier:
    """Publishes per-slot order status to devices (QoS 1, retained, so a device that wakes up sees it)."""

    def __init__(self, target: MqttTarget, client_id: str = "replenish-notifier", topics: Topics = DEFAULT_TOPICS) -> None:
        self.target = target
        self.topics = topics
        self._connected = threading.Event()
        self._client = new_client(target, client_id)
        self._client.on_connect = self._on_connect

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        if not reason.is_failure:
            self._connected.set()

    def start(self, timeout: float = 30.0) -> None:
        """Connect in the background."""
        self._client.connect_async(self.target.host, self.target.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"notifier could not connect to MQTT at {self.target.url}")

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish_orders(self, device_id: str, slots: dict[str, dict[str, Any]], now: datetime) -> None:
        """Publish what is on its way to a device, per slot."""
        self._client.publish(self.topics.topic(device_id, "orders"), orders_payload(now, slots), qos=1, retain=True)
        log.info("told %s about orders for %s", device_id, sorted(slots))
