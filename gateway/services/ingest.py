"""MQTT ingest: QoS 1 with a persistent session, batched commits, acknowledgements only after commit.

Two stages: one thread parses what the connection received (`pipeline.Parser`) while `writers`
threads, each on its own database connection, store and acknowledge the batches before. Ingest
only appends rows, so concurrent batches never wait on each other's locks: the database's time
(in C, or on the server) overlaps with the parsing and with the other writers' statements.
Batches adapt to the load: the parser hands over chunks as they arrive, and a writer that comes
free takes all that is waiting (up to `batch_size`). At a trickle each message is stored at once;
under a flood batches grow, and with them what one commit carries.

SPEC 3: one device's poison never stalls anyone. When the database refuses a write, the driver's
error class says why (`failure_kind`): for what the write carried, the transaction is stored in
halves at once, until each refused message stands alone and is dead-lettered (`store_failed`)
while every other message is stored; when the database cannot be reached, the same transaction is
retried after a pause, for as long as it takes.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from ..metrics import INGEST_LAG, INGEST_LATENCY, QUARANTINED, READINGS, REJECTED
from ..mqtt import Delivery, IngestConnection
from ..protocol import DeviceBudget
from ..storage import GatewayStorage, IngestCounts
from .pipeline import CHUNK, BirthOp, IngestOptions, Op, OverBudgetOp, Parsed, Parser, RejectOp, StatusOp, TelemetryOp, TelemetryRun

__all__ = ["Failure", "Ingestor", "failure_kind"]

log = logging.getLogger(__name__)

_RETRY_PAUSE = 1.0  # seconds between attempts while the database cannot be reached
# A failure of no known kind (a bug of ours, say) is retried like an unreachable database, but after
# this many attempts the transaction is stored in halves all the same: it must not stall ingest either.
_ALONE_AFTER = 3
_BIRTH_TRIES = 3  # two workers may create the same device at once; the loser finds it on its next try
_OUTCOMES = tuple(IngestCounts.__dataclass_fields__)  # stored, duplicates, not_consented, unknown, rejected

Failure = Literal["data", "connection", "other"]


def failure_kind(exc: BaseException, dialect: Dialect) -> Failure:
    """Why a write failed, read from the class of the driver's error (PEP 249's, alike in psycopg and sqlite3).

    - "data": the database refused what the write carried, so some message in it is poison:
      DataError, IntegrityError, ProgrammingError (PostgreSQL: NUL in text, a violated
      constraint; SQLite: a value it cannot bind), and a ValueError or OverflowError raised while
      binding (UnicodeEncodeError: an unpaired surrogate; an integer past 64 bits).
    - "connection": the database cannot take any write now, and the same write will succeed
      later: OperationalError, InterfaceError, InternalError (PostgreSQL: server gone, lock
      timeout, deadlock, shutdown, read-only; SQLite: "database is locked", disk I/O), an error
      after which SQLAlchemy invalidated the connection, a pool out of connections. It wins.
    - "other": anything else (NotSupportedError, a bug of ours).

    A ProgrammingError of our own SQL (an undefined table: a migration not run) fails every
    message alone too, so each is dead-lettered, bytes and all: loud, and nothing lost, where a
    retry would have stalled every device.

    SQLAlchemy wraps the driver's errors in classes of the same names (the driver's as `orig`);
    the hot path's raw cursors (`BatchSql`) raise the driver's own.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return "connection"
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return "connection"
    if isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
        exc = exc.orig  # the driver's error, or a value the driver could not bind
    dbapi = dialect.loaded_dbapi
    if isinstance(exc, dbapi.Error):
        if isinstance(exc, dbapi.OperationalError | dbapi.InterfaceError | dbapi.InternalError) or dialect.is_disconnect(exc, None, None):
            return "connection"
        if isinstance(exc, dbapi.DataError | dbapi.IntegrityError | dbapi.ProgrammingError):
            return "data"
        return "other"
    if isinstance(exc, ValueError | OverflowError):
        return "data"
    return "other"


def _transactions(ops: list[Op]) -> Iterator[list[Op]]:
    """A batch's ops as the transactions that store them, in arrival order: consecutive telemetry together, anything else alone."""
    telemetry: list[Op] = []
    for op in ops:
        if type(op) is TelemetryRun or type(op) is TelemetryOp:
            telemetry.append(op)
            continue
        if telemetry:
            yield telemetry
            telemetry = []
        yield [op]
    if telemetry:
        yield telemetry


def _messages(ops: list[Op]) -> list[Op]:
    """A transaction's ops with each telemetry message on its own, so that they can be stored in any grouping."""
    alone: list[Op] = []
    for op in ops:
        if type(op) is TelemetryRun:
            alone += [TelemetryOp(item, msg) for item, msg in zip(op.deliveries, op.messages, strict=True)]
        else:
            alone.append(op)
    return alone


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own error inside SQLAlchemy's wrapper (its message, without the statement and its parameters)."""
    return exc.orig if isinstance(exc, sa.exc.StatementError) and isinstance(exc.orig, BaseException) else exc


class Ingestor:
    """Stores what devices say on the connection it is handed, each reading at most once."""

    def __init__(self, storage: GatewayStorage, connection: IngestConnection, options: IngestOptions) -> None:
        self.storage = storage
        self.options = options
        self.client_id = options.client_id
        self.batch_size = options.batch_size
        self._conn = connection
        self._parser = Parser(options.topics, storage.telemetry.prepare, DeviceBudget(options.device_burst, options.device_per_minute))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._parsed = Parsed(limit=2 * options.batch_size)
        self._in_hand = 0  # taken from the connection, not yet acknowledged
        self._count_lock = threading.Lock()
        self._dialect = storage.engine.dialect  # whose error classes say why a write failed
        self._writing: dict[int, float] = {}  # writer thread -> when its batch's oldest message arrived

    def start(self, timeout: float = 30.0) -> None:
        """Connect, subscribe and start the parsing and writing threads."""
        # A worker that reconnects to its session is not sent the retained births again: the
        # registry says which class each known device is of (a flood's metric label).
        try:
            self._parser.learn_kinds(self.storage.registry.kinds())
        except sa.exc.SQLAlchemyError:
            log.warning("device kinds not read from the registry; floods are labelled by class once births arrive", exc_info=True)
        try:
            self._conn.start(timeout)
        except ConnectionError as exc:
            if self.options.share_group:
                raise ConnectionError(
                    f"{exc}; a shared subscription (share_group={self.options.share_group!r}) needs an MQTT 5 broker such as Mosquitto, "
                    "and the embedded broker speaks only MQTT 3.1.1"
                ) from exc
            raise
        INGEST_LAG.set_function(self.lag)
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
        INGEST_LAG.set_function(lambda: 0.0)

    def lag(self) -> float:
        """Seconds since the oldest message received and not yet acknowledged arrived (0 when none)."""
        arrivals = [t for t in (self._conn.oldest(), self._parsed.oldest(), *list(self._writing.values())) if t is not None]
        return max(time.monotonic() - min(arrivals), 0.0) if arrivals else 0.0

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
            me = threading.get_ident()
            self._writing[me] = batch[0].arrived
            self._store(ops)
            self._parsed.done(barrier)
            self._conn.ack(batch)  # only now: a crash before this line loses nothing, the broker redelivers
            self._writing.pop(me, None)
            INGEST_LATENCY.observe(time.monotonic() - batch[0].arrived)  # the batch's oldest message
            with self._count_lock:
                self._in_hand -= len(batch)

    def _store(self, ops: list[Op]) -> None:
        """Store parsed messages in arrival order; returns once each is stored or dead-lettered.

        Each transaction is committed once: what committed before a failure is not written again
        (a dead letter is kept once), only the failed transaction is retried or stored in halves.
        """
        for transaction in _transactions(ops):
            self._commit(transaction)

    def _commit(self, ops: list[Op]) -> None:
        """One transaction's ops, until stored: poison is isolated at once, an unreachable database waited for."""
        for attempt in itertools.count(1):
            try:
                self._apply(ops)
                return
            except Exception as exc:  # noqa: BLE001 - sorted by failure_kind
                kind = failure_kind(exc, self._dialect)
                if kind == "data" or (kind == "other" and attempt % _ALONE_AFTER == 0):
                    log.warning("the database refused %d messages (%s): storing them in halves to find the refused ones", _count(ops), _brief(exc))
                    ops = self._isolate(ops, exc)
                    if not ops:
                        return
                else:
                    log.exception("storing %d messages failed (attempt %d, %s); retrying", _count(ops), attempt, kind)
            time.sleep(_RETRY_PAUSE)

    def _isolate(self, ops: list[Op], exc: BaseException) -> list[Op]:
        """Store ops the database refused (with `exc`) in halves until each refused message stands alone, and dead-letter it.

        Every good message is stored, in order; k refused ones among n cost about 2k log2(n)
        transactions. Returns what is left when the database goes away part-way (else nothing).
        """
        todo = deque([_messages(ops)])
        failure: BaseException | None = exc  # how the part at the front failed; None: not tried yet
        while todo:
            part = todo[0]
            if failure is None:
                try:
                    self._apply(part)
                    todo.popleft()
                    continue
                except Exception as again:  # noqa: BLE001 - sorted by failure_kind
                    if failure_kind(again, self._dialect) == "connection":
                        break
                    failure = again
            todo.popleft()
            if len(part) > 1:
                half = len(part) // 2
                todo.extendleft((part[half:], part[:half]))  # the first half first
            elif not self._quarantine(part[0], failure):
                todo.appendleft(part)
                break
            failure = None
        return [op for p in todo for op in p]

    def _quarantine(self, op: Op, exc: BaseException) -> bool:
        """Dead-letter a message the database refused even alone; False when the letter could not be written (retry later)."""
        delivery = op.delivery  # type: ignore[union-attr] # _messages took the runs apart
        error = _driver_error(exc)
        detail = f"{type(error).__name__}: {error}"
        try:
            self._reject(delivery, "store_failed", detail)
        except Exception as again:  # noqa: BLE001 - sorted by failure_kind
            if failure_kind(again, self._dialect) != "data":
                return False  # not the letter's content: try again later
            # A dead letter holds bytes and escaped text only, so this is a bug of ours; the stream must go on.
            log.exception("the dead letter of a message on %r was refused too (%s); the message is dropped", delivery.topic, detail)
        QUARANTINED.labels(type(error).__name__).inc()
        return True

    def _reject(self, item: Delivery, reason: str, detail: str) -> None:
        # A retained message comes again at every reconnect: recorded (and counted) the first time only.
        if not self.storage.dead_letters.add(item.topic, item.payload, reason, detail, item.received_at, once=item.retain):
            return
        REJECTED.labels(reason).inc()
        log.warning("rejected message on %r: %s (%s)", item.topic, reason, detail[:400])

    def _apply(self, ops: list[Op]) -> None:
        """Write one transaction's ops: a run of telemetry, or one other message."""
        op = ops[0]
        if type(op) is TelemetryRun or type(op) is TelemetryOp:
            self._flush(ops)
        elif type(op) is BirthOp:
            self._birth(op)
        elif type(op) is StatusOp:
            self.storage.registry.record_status(op.device_id, op.online, op.delivery.received_at)
        elif type(op) is RejectOp:
            self._reject(op.delivery, op.reason, op.detail)
        elif type(op) is OverBudgetOp:  # each dropped message is counted already, as it was dropped
            self.storage.dead_letters.add(op.delivery.topic, op.delivery.payload, "over_budget", op.detail, op.delivery.received_at)

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

    def _flush(self, ops: list[Op]) -> None:
        """Telemetry in one transaction: prepared runs as they are, single messages prepared together."""
        prepared = [op.prepared for op in ops if type(op) is TelemetryRun]  # type: ignore[union-attr]
        if single := [op.message for op in ops if type(op) is TelemetryOp]:  # type: ignore[union-attr]
            prepared.append(self.storage.telemetry.prepare(single))
        counts = self.storage.telemetry.write(prepared)
        for outcome in _OUTCOMES:
            if n := getattr(counts, outcome):
                READINGS.labels(outcome).inc(n)


def _count(ops: list[Op]) -> int:
    return sum(len(op.deliveries) if type(op) is TelemetryRun else 1 for op in ops)  # type: ignore[union-attr]


def _brief(exc: BaseException) -> str:
    error = _driver_error(exc)
    return f"{type(error).__name__}: {str(error)[:200]}"
