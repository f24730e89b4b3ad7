"""MQTT ingest: QoS 1 with a persistent session, batched commits, acknowledgements only after commit."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ._clock import Clock
from ._ingest_mqtt import V5, V311, Delivery, IngestConnection
from ._messages import Birth, InvalidMessage, parse_birth, parse_status, parse_telemetry
from ._metrics import INGEST_LATENCY, MESSAGES, READINGS, REJECTED
from ._mqtt import MqttTarget
from ._normalise import MAX_AHEAD
from ._store import GatewayStore, PreparedTelemetry, TelemetryIn
from ._topics import PREFIX, DeviceTopic, parse_topic

__all__ = ["Ingestor"]

log = logging.getLogger(__name__)

_RETRY_PAUSE = 1.0  # seconds between attempts when the database refuses a batch
# After this many failed attempts a batch is stored message by message, so that one message the
# database cannot take (not the database being away) is dead-lettered instead of stopping ingest.
_ALONE_AFTER = 3
_BIRTH_TRIES = 3  # two workers may create the same device at once; the loser finds it on its next try
_SHARE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OUTCOMES = ("stored", "duplicates", "not_consented", "unknown", "rejected")
_Op = tuple[str, Any, Any]  # ("telemetry" | "run" | "birth" | "status" | "reject", delivery (None for a run), what to store)
_CHUNK = 500  # deliveries the parser takes off the connection at a time
_ORDERED = frozenset(("birth", "status"))  # ops stored in arrival order with the telemetry around them
_TOPIC_CACHE = 100_000  # parsed topics the parser remembers (a fleet's devices repeat theirs)
_UNSEEN: Any = object()


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive telemetry messages of a chunk, prepared for the database."""

    deliveries: list[Delivery]
    messages: list[TelemetryIn]
    prepared: PreparedTelemetry


class _Parsed:
    """Parsed chunks waiting for a writer; `take` hands over whole chunks, in order, up to a size.

    Writers store batches side by side, so batches may commit out of order. That is harmless
    for telemetry (readings are appended, and settle orders them by time) but not for a birth
    or a status: a birth must be stored before the telemetry that follows it, which it may
    announce slots for. A chunk holding either is a barrier: it waits until every batch before
    it has been stored, and no later batch starts until it has been.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit  # the parser waits while this many deliveries are waiting
        self._chunks: deque[tuple[list[Delivery], list[_Op], bool]] = deque()
        self._size = 0
        self._busy = 0  # batches handed out and not yet done
        self._barrier = False  # an ordered chunk is being stored
        self._closed = False
        self._cond = threading.Condition()

    def put(self, batch: list[Delivery], ops: list[_Op]) -> None:
        ordered = any(op[0] in _ORDERED for op in ops)
        with self._cond:
            while self._size >= self._limit and not self._closed:
                self._cond.wait()
            self._chunks.append((batch, ops, ordered))
            self._size += len(batch)
            self._cond.notify_all()

    def close(self) -> None:
        """No more chunks: writers drain what is left, then `take` returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, most: int) -> tuple[list[Delivery], list[_Op], bool] | None:
        """The next batch and whether it is a barrier; call `done` with that flag once it is stored."""
        with self._cond:
            while not self._ready():
                if self._closed and not self._chunks:
                    return None
                self._cond.wait()
            batch, ops, ordered = self._chunks.popleft()
            batch, ops = list(batch), list(ops)
            while not ordered and self._chunks and not self._chunks[0][2] and len(batch) + len(self._chunks[0][0]) <= most:
                more, more_ops, _ = self._chunks.popleft()
                batch += more
                ops += more_ops
            self._size -= len(batch)
            self._busy += 1
            self._barrier = ordered
            self._cond.notify_all()
            return batch, ops, ordered

    def done(self, ordered: bool) -> None:
        with self._cond:
            self._busy -= 1
            if ordered:
                self._barrier = False
            self._cond.notify_all()

    def _ready(self) -> bool:
        if not self._chunks or self._barrier:
            return False
        return not self._chunks[0][2] or self._busy == 0


def subscriptions(share_group: str | None) -> tuple[str, ...]:
    """Birth and status on every worker (retained, and never sent to shared subscriptions); telemetry shared."""
    telemetry = f"{PREFIX}/+/telemetry"
    if share_group:
        telemetry = f"$share/{share_group}/{telemetry}"
    return (f"{PREFIX}/+/birth", telemetry, f"{PREFIX}/+/status")


class Ingestor:
    """Subscribes to device topics and stores what they say, each reading at most once."""

    def __init__(
        self,
        store: GatewayStore,
        clock: Clock,
        target: MqttTarget,
        client_id: str = "replenish-gateway",
        batch_size: int = 10000,
        batch_wait: float = 0.02,
        share_group: str | None = None,
        mqtt_version: int | None = None,
        writers: int = 2,
    ) -> None:
        if share_group is not None and not _SHARE_NAME.fullmatch(share_group):
            raise ValueError(f"share group must be 1-64 of [A-Za-z0-9_-], got {share_group!r}")
        if share_group and mqtt_version == V311:
            raise ValueError("a shared subscription (share_group) needs MQTT 5")
        if writers < 1:
            raise ValueError(f"writers must be at least 1, got {writers}")
        self.store = store
        self.clock = clock
        self.target = target
        self.client_id = client_id
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.share_group = share_group or None
        self.writers = writers
        self._topics: dict[str, DeviceTopic | None] = {}  # used by the parse thread only
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Two stages: one thread parses batches while `writers` threads, each on its own database
        # connection, store and acknowledge the ones before. Ingest only appends rows, so
        # concurrent batches never wait on each other's locks: the database's time (in C, or on
        # the server) overlaps with the parsing and with the other writers' statements.
        # Batches adapt to the load: the parser hands over chunks as they arrive, and a writer that
        # comes free takes all that is waiting (up to `batch_size`). At a trickle each message is
        # stored at once; under a flood batches grow, and with them what one commit carries.
        self._parsed = _Parsed(limit=2 * batch_size)
        self._in_hand = 0  # taken from the connection, not yet acknowledged
        self._count_lock = threading.Lock()
        # Acknowledging after commit keeps up to this many messages unacknowledged at the broker
        # (MQTT 5 Receive Maximum; with 3.1.1 the broker's own limit applies, Mosquitto's
        # max_inflight_messages): the batches being stored, those parsed and waiting, and room
        # for the broker to keep sending meanwhile. A window only as deep as the pipeline stalled
        # delivery after every commit.
        window = min(max((writers + 2) * batch_size + 2 * _CHUNK * 10, 1000), 0xFFFF)
        self._conn = IngestConnection(
            target, client_id, subscriptions(self.share_group), clock.now, version=V5 if self.share_group else mqtt_version, receive_maximum=window
        )

    def start(self, timeout: float = 30.0) -> None:
        """Connect, subscribe and start the writer thread."""
        try:
            self._conn.start(timeout)
        except ConnectionError as exc:
            if self.share_group:
                raise ConnectionError(
                    f"{exc}; a shared subscription (share_group={self.share_group!r}) needs an MQTT 5 broker such as Mosquitto, "
                    "and the embedded broker speaks only MQTT 3.1.1"
                ) from exc
            raise
        stages = [("parse", self._run)] + [(f"store{i}", self._write) for i in range(self.writers)]
        for name, target in stages:
            thread = threading.Thread(target=target, name=f"ingest-{name}-{self.client_id}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Store and acknowledge what was received, then disconnect (the broker keeps the session)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self._conn.close()

    @property
    def pending(self) -> int:
        """Messages received but not yet committed."""
        return self._conn.queued + self._in_hand

    @property
    def mqtt_version(self) -> int | None:
        """The MQTT version spoken with the broker (5, or 4 for 3.1.1); None before connecting."""
        return self._conn.version

    def _run(self) -> None:
        """Stage 1: take batches off the connection and parse them."""
        while True:
            stopping = self._stop.is_set()
            # On stop, one last pass takes everything queued; later arrivals stay unacknowledged
            # and the broker redelivers them to the next worker on this session.
            chunk = min(self.batch_size, _CHUNK)
            batch = self._conn.take(1 << 30, 0, 0) if stopping else self._conn.take(chunk, self.batch_wait, 0.2)
            if batch:
                with self._count_lock:
                    self._in_hand += len(batch)
                self._parsed.put(batch, self._parse(batch))
            if stopping:
                self._parsed.close()
                return

    def _write(self) -> None:
        """Stage 2 (one thread per writer): store a parsed batch, then acknowledge it."""
        while (job := self._parsed.take(self.batch_size)) is not None:
            batch, ops, ordered = job
            started = time.perf_counter()
            for attempt in itertools.count(1):
                try:
                    self._store(ops)
                    break
                except Exception:  # noqa: BLE001 - the database is away; keep the batch and retry
                    log.exception("storing a batch of %d messages failed (attempt %d); retrying", len(batch), attempt)
                    if attempt % _ALONE_AFTER == 0 and self._store_one_by_one(ops):
                        break
                    time.sleep(_RETRY_PAUSE)
            self._parsed.done(ordered)
            self._conn.ack(batch)  # only now: a crash before this line loses nothing, the broker redelivers
            INGEST_LATENCY.observe(time.perf_counter() - started)
            with self._count_lock:
                self._in_hand -= len(batch)

    def _reject(self, item: Delivery, reason: str, detail: str) -> None:
        REJECTED.labels(reason).inc()
        log.warning("rejected message on %s: %s (%s)", item.topic, reason, detail)
        self.store.dead_letter(item.topic, item.payload, reason, detail, item.received_at)

    def _store_one_by_one(self, ops: list[_Op]) -> bool:
        """Store each message alone, dead-lettering any that fails; False when even that cannot reach the database."""
        alone: list[_Op] = []
        for op in ops:
            if op[0] == "run":
                alone += [("telemetry", item, msg) for item, msg in zip(op[2].deliveries, op[2].messages, strict=True)]
            else:
                alone.append(op)
        for op in alone:
            try:
                self._store([op])
            except Exception as exc:  # noqa: BLE001 - this message, not the database, is the problem
                try:
                    self._reject(op[1], "store_failed", f"{type(exc).__name__}: {exc}"[:400])
                except Exception:  # noqa: BLE001 - the database itself is away: retry the batch later
                    return False
        return True

    def _parse(self, batch: list[Delivery]) -> list[_Op]:
        """Each delivery as what to store, or why it is rejected; no database work."""
        ops: list[_Op] = []
        kinds: Counter[str] = Counter()
        topics = self._topics
        if len(topics) > _TOPIC_CACHE:
            topics.clear()
        for item in batch:
            topic = topics.get(item.topic, _UNSEEN)
            if topic is _UNSEEN:
                topic = topics[item.topic] = parse_topic(item.topic)
            if topic is None:
                ops.append(("reject", item, ("bad_topic", "not a protocol v1 device topic")))
                continue
            kinds[topic.suffix] += 1
            try:
                if topic.suffix == "telemetry":
                    telemetry = parse_telemetry(item.payload, topic.device_id)
                    if telemetry.ts - item.received_at > MAX_AHEAD:
                        raise InvalidMessage("bad_timestamp", f"'ts' is {telemetry.ts - item.received_at} ahead of the gateway's clock (at most {MAX_AHEAD})")
                    ops.append(("telemetry", item, TelemetryIn(topic.device_id, telemetry, item.received_at)))
                elif topic.suffix == "birth":
                    if item.payload:  # an empty retained payload clears a birth; nothing to store
                        ops.append(("birth", item, (topic.device_id, parse_birth(item.payload, topic.device_id))))
                elif topic.suffix == "status":
                    ops.append(("status", item, (topic.device_id, parse_status(item.payload, topic.device_id))))
            except InvalidMessage as exc:
                ops.append(("reject", item, (exc.reason, str(exc))))
            except Exception as exc:  # noqa: BLE001 - a parser bug must cost one message, never the stream
                log.exception("parsing a message on %s failed", item.topic)
                ops.append(("reject", item, ("parse_error", f"{type(exc).__name__}: {exc}"[:400])))
        for kind, n in kinds.items():
            MESSAGES.labels(kind).inc(n)
        return self._prepare(ops)

    def _prepare(self, ops: list[_Op]) -> list[_Op]:
        """Each run of consecutive telemetry as one op, prepared for the database (`_Run`), so writers only write."""
        out: list[_Op] = []
        run: list[_Op] = []
        for op in [*ops, ("end", None, None)]:
            if op[0] == "telemetry":
                run.append(op)
                continue
            if run:
                msgs = [r[2] for r in run]
                try:
                    out.append(("run", None, _Run([r[1] for r in run], msgs, self.store.prepare_telemetry(msgs))))
                except Exception:  # noqa: BLE001 - the database is away (a new device's clock): writers prepare and retry
                    log.exception("preparing %d telemetry messages failed; the writer will", len(run))
                    out += run
                run = []
            if op[0] != "end":
                out.append(op)
        return out

    def _store(self, ops: list[_Op]) -> None:
        """Apply parsed messages in arrival order; consecutive telemetry is stored as one batch."""
        telemetry: list[PreparedTelemetry] = []
        for kind, item, value in ops:
            if kind == "run":
                telemetry.append(value.prepared)
                continue
            if kind == "telemetry":  # a single message, stored alone (_store_one_by_one)
                telemetry.append(self.store.prepare_telemetry([value]))
                continue
            self._flush(telemetry)  # keep each device's messages in arrival order
            if kind == "birth":
                self._birth(*value, item)  # type: ignore[misc]
            elif kind == "status":
                device_id, online = value  # type: ignore[misc]
                self.store.record_status(device_id, online, item.received_at)
            else:
                self._reject(item, *value)  # type: ignore[misc]
        self._flush(telemetry)

    def _birth(self, device_id: str, birth: Birth, item: Delivery) -> None:
        # Every worker receives every (retained) birth, so two may insert the same new device at
        # once; the loser's insert fails on the primary key and its retry updates the row instead.
        for attempt in range(1, _BIRTH_TRIES + 1):
            try:
                self.store.record_birth(device_id, birth, item.received_at)
                return
            except sa.exc.IntegrityError:
                if attempt == _BIRTH_TRIES:
                    raise
                log.info("birth of %s raced another worker; retrying", device_id)

    def _flush(self, telemetry: list[PreparedTelemetry]) -> None:
        if not telemetry:
            return
        counts = self.store.write_telemetry(telemetry)
        for outcome in _OUTCOMES:
            if n := getattr(counts, outcome):
                READINGS.labels(outcome).inc(n)
        telemetry.clear()
