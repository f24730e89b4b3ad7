"""MQTT ingest: QoS 1 with a persistent session, batched commits, acknowledgements only after commit."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt

from ._clock import Clock
from ._messages import InvalidMessage, parse_birth, parse_status, parse_telemetry
from ._metrics import INGEST_LATENCY, MESSAGES, READINGS, REJECTED
from ._mqtt import MqttTarget, new_client
from ._store import GatewayStore, TelemetryIn
from ._topics import PREFIX, parse_topic

__all__ = ["Ingestor"]

log = logging.getLogger(__name__)

SUBSCRIPTIONS = tuple(f"{PREFIX}/+/{suffix}" for suffix in ("birth", "telemetry", "status"))
_RETRY_PAUSE = 1.0  # seconds between attempts when the database refuses a batch


@dataclass(frozen=True, slots=True)
class _Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime


class Ingestor:
    """Subscribes to device topics and stores what they say, each reading at most once."""

    def __init__(
        self,
        store: GatewayStore,
        clock: Clock,
        target: MqttTarget,
        client_id: str = "replenish-gateway",
        batch_size: int = 1000,
        batch_wait: float = 0.05,
    ) -> None:
        self.store = store
        self.clock = clock
        self.target = target
        self.client_id = client_id
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self._queue: queue.Queue[_Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._worker: threading.Thread | None = None
        # clean_session=False: the broker keeps our subscription and unacked QoS 1 messages across restarts.
        self._client = new_client(target, client_id, clean_session=False, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self, timeout: float = 30.0) -> None:
        """Connect, subscribe and start the writer thread."""
        self._worker = threading.Thread(target=self._run, name=f"ingest-{self.client_id}", daemon=True)
        self._worker.start()
        self._client.connect_async(self.target.host, self.target.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"gateway could not connect to MQTT at {self.target.url}")

    def stop(self) -> None:
        """Drain what was received, then disconnect."""
        self._stop.set()
        if self._worker:
            self._worker.join(30)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def pending(self) -> int:
        """Messages received but not yet committed."""
        return self._queue.qsize()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        if reason.is_failure:
            log.error("MQTT connect refused: %s", reason)
            return
        client.subscribe([(t, 1) for t in SUBSCRIPTIONS])
        self._connected.set()
        log.info("gateway subscribed at %s as %s", self.target.url, self.client_id)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("gateway disconnected from MQTT: %s", reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(_Incoming(msg.topic, msg.payload, msg.mid, msg.qos, self.clock.now()))

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
            while True:
                try:
                    self._handle(batch)
                    break
                except Exception:  # noqa: BLE001 - the database is away; keep the batch and retry
                    log.exception("storing a batch of %d messages failed; retrying", len(batch))
                    time.sleep(_RETRY_PAUSE)
            for item in batch:
                if item.qos > 0:
                    self._client.ack(item.mid, item.qos)

    def _reject(self, item: _Incoming, reason: str, detail: str) -> None:
        REJECTED.labels(reason).inc()
        log.warning("rejected message on %s: %s (%s)", item.topic, reason, detail)
        self.store.dead_letter(item.topic, item.payload, reason, detail, item.received_at)

    def _handle(self, batch: list[_Incoming]) -> None:
        started = time.perf_counter()
        telemetry: list[TelemetryIn] = []
        for item in batch:
            topic = parse_topic(item.topic)
            if topic is None:
                self._reject(item, "bad_topic", "not a protocol v1 device topic")
                continue
            MESSAGES.labels(topic.suffix).inc()
            try:
                if topic.suffix == "telemetry":
                    telemetry.append(TelemetryIn(topic.device_id, parse_telemetry(item.payload, topic.device_id), item.received_at))
                    continue
                self._flush(telemetry)  # keep each device's messages in arrival order
                if topic.suffix == "birth":
                    if item.payload:  # an empty retained payload clears a birth; nothing to store
                        self.store.record_birth(topic.device_id, parse_birth(item.payload, topic.device_id), item.received_at)
                elif topic.suffix == "status":
                    self.store.record_status(topic.device_id, parse_status(item.payload, topic.device_id), item.received_at)
            except InvalidMessage as exc:
                self._reject(item, exc.reason, str(exc))
        self._flush(telemetry)
        INGEST_LATENCY.observe(time.perf_counter() - started)

    def _flush(self, telemetry: list[TelemetryIn]) -> None:
        if not telemetry:
            return
        counts = self.store.store_telemetry(telemetry)
        for outcome in ("stored", "duplicates", "not_consented", "unknown", "rejected"):
            READINGS.labels(outcome).inc(getattr(counts, outcome))
        telemetry.clear()
