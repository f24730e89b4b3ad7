"""MQTT ingest: QoS 1 with a persistent session, batched commits, acknowledgements only after commit.

Two stages: one thread parses what the connection received (`pipeline.Parser`) while `writers`
threads, each on its own database connection, store and acknowledge the batches before. Ingest
only appends rows, so concurrent batches never wait on each other's locks: the database's time
(in C, or on the server) overlaps with the parsing and with the other writers' statements.
Batches adapt to the load: the parser hands over chunks as they arrive, and a writer that comes
free takes all that is waiting (up to `batch_size`). At a trickle each message is stored at once;
under a flood batches grow, and with them what one commit carries.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

import sqlalchemy as sa

from ..metrics import INGEST_LATENCY, READINGS, REJECTED
from ..mqtt import Delivery, IngestConnection
from ..storage import GatewayStorage, IngestCounts, PreparedTelemetry
from .pipeline import CHUNK, BirthOp, IngestOptions, Op, Parsed, Parser, RejectOp, StatusOp, TelemetryOp, TelemetryRun

__all__ = ["Ingestor"]

log = logging.getLogger(__name__)

_RETRY_PAUSE = 1.0  # seconds between attempts when the database refuses a batch
# After this many failed attempts a batch is stored message by message, so that one message the
# database cannot take (not the database being away) is dead-lettered instead of stopping ingest.
_ALONE_AFTER = 3
_BIRTH_TRIES = 3  # two workers may create the same device at once; the loser finds it on its next try
_OUTCOMES = tuple(IngestCounts.__dataclass_fields__)  # stored, duplicates, not_consented, unknown, rejected


class Ingestor:
    """Stores what devices say on the connection it is handed, each reading at most once."""

    def __init__(self, storage: GatewayStorage, connection: IngestConnection, options: IngestOptions) -> None:
        self.storage = storage
        self.options = options
        self.client_id = options.client_id
        self.batch_size = options.batch_size
        self._conn = connection
        self._parser = Parser(options.topics, storage.telemetry.prepare)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._parsed = Parsed(limit=2 * options.batch_size)
        self._in_hand = 0  # taken from the connection, not yet acknowledged
        self._count_lock = threading.Lock()

    def start(self, timeout: float = 30.0) -> None:
        """Connect, subscribe and start the parsing and writing threads."""
        try:
            self._conn.start(timeout)
        except ConnectionError as exc:
            if self.options.share_group:
                raise ConnectionError(
                    f"{exc}; a shared subscription (share_group={self.options.share_group!r}) needs an MQTT 5 broker such as Mosquitto, "
                    "and the embedded broker speaks only MQTT 3.1.1"
                ) from exc
            raise
        stages = [("parse", self._run)] + [(f"store{i}", self._write) for i in range(self.options.writers)]
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
            chunk = min(self.batch_size, CHUNK)
            batch = self._conn.take(1 << 30, 0, 0) if stopping else self._conn.take(chunk, self.options.batch_wait, 0.2)
            if batch:
                with self._count_lock:
                    self._in_hand += len(batch)
                self._parsed.put(batch, self._parser.parse(batch))
            if stopping:
                self._parsed.close()
                return

    def _write(self) -> None:
        """Stage 2 (one thread per writer): store a parsed batch, then acknowledge it."""
        while (job := self._parsed.take(self.batch_size)) is not None:
            batch, ops, barrier = job
            for attempt in itertools.count(1):
                try:
                    self._store(ops)
                    break
                except Exception:  # noqa: BLE001 - the database is away; keep the batch and retry
                    log.exception("storing a batch of %d messages failed (attempt %d); retrying", len(batch), attempt)
                    if attempt % _ALONE_AFTER == 0 and self._store_one_by_one(ops):
                        break
                    time.sleep(_RETRY_PAUSE)
            self._parsed.done(barrier)
            self._conn.ack(batch)  # only now: a crash before this line loses nothing, the broker redelivers
            INGEST_LATENCY.observe(time.monotonic() - batch[0].arrived)  # the batch's oldest message
            with self._count_lock:
                self._in_hand -= len(batch)

    def _reject(self, item: Delivery, reason: str, detail: str) -> None:
        REJECTED.labels(reason).inc()
        log.warning("rejected message on %s: %s (%s)", item.topic, reason, detail)
        self.storage.dead_letters.add(item.topic, item.payload, reason, detail, item.received_at)

    def _store_one_by_one(self, ops: list[Op]) -> bool:
        """Store each message alone, dead-lettering any that fails; False when even that cannot reach the database."""
        alone: list[Op] = []
        for op in ops:
            if type(op) is TelemetryRun:
                alone += [TelemetryOp(item, msg) for item, msg in zip(op.deliveries, op.messages, strict=True)]
            else:
                alone.append(op)
        for op in alone:
            try:
                self._store([op])
            except Exception as exc:  # noqa: BLE001 - this message, not the database, is the problem
                try:
                    self._reject(op.delivery, "store_failed", f"{type(exc).__name__}: {exc}"[:400])  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 - the database itself is away: retry the batch later
                    return False
        return True

    def _store(self, ops: list[Op]) -> None:
        """Apply parsed messages in arrival order; consecutive telemetry is stored as one batch."""
        telemetry: list[PreparedTelemetry] = []
        for op in ops:
            if type(op) is TelemetryRun:
                telemetry.append(op.prepared)
                continue
            if type(op) is TelemetryOp:  # a single message, stored alone (_store_one_by_one), or unprepared
                telemetry.append(self.storage.telemetry.prepare([op.message]))
                continue
            self._flush(telemetry)  # keep each device's messages in arrival order
            if type(op) is BirthOp:
                self._birth(op)
            elif type(op) is StatusOp:
                self.storage.registry.record_status(op.device_id, op.online, op.delivery.received_at)
            elif type(op) is RejectOp:
                self._reject(op.delivery, op.reason, op.detail)
        self._flush(telemetry)

    def _birth(self, op: BirthOp) -> None:
        # Every worker receives every (retained) birth, so two may insert the same new device at
        # once; the loser's insert fails on the primary key and its retry updates the row instead.
        for attempt in range(1, _BIRTH_TRIES + 1):
            try:
                self.storage.registry.record_birth(op.device_id, op.birth, op.delivery.received_at)
                return
            except sa.exc.IntegrityError:
                if attempt == _BIRTH_TRIES:
                    raise
                log.info("birth of %s raced another worker; retrying", op.device_id)

    def _flush(self, telemetry: list[PreparedTelemetry]) -> None:
        if not telemetry:
            return
        counts = self.storage.telemetry.write(telemetry)
        for outcome in _OUTCOMES:
            if n := getattr(counts, outcome):
                READINGS.labels(outcome).inc(n)
        telemetry.clear()

