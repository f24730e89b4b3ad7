"""Ingest's stages between the connection and the writers: deliveries parsed into ops, queued for writers in order.

The op types are the pipeline's contract: what a writer stores (a prepared run of telemetry, a
birth, a status) or dead-letters (a rejection with its reason). They are slotted dataclasses but
not frozen: a frozen dataclass's `__init__` costs about three times as much, once per message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..metrics import MESSAGES
from ..mqtt import V311, Delivery
from ..metrics import OVER_BUDGET, REJECTED
from ..protocol import (
    DEFAULT_BURST,
    DEFAULT_PER_MINUTE,
    DEFAULT_TOPICS,
    NAME,
    NOTE_EVERY,
    Birth,
    DeviceBudget,
    DeviceTopic,
    InvalidMessage,
    TelemetryIn,
    Topics,
    device_class,
    parse_birth,
    parse_status,
    note_detail,
    parse_telemetry,
)
from ..readings import MAX_AHEAD
from ..storage import PreparedTelemetry

__all__ = [
    "CHUNK",
    "BirthOp",
    "IngestOptions",
    "Op",
    "OverBudgetOp",
    "Parsed",
    "Parser",
    "RejectOp",
    "StatusOp",
    "TelemetryOp",
    "TelemetryRun",
]

log = logging.getLogger(__name__)

CHUNK = 500  # deliveries the parser takes off the connection at a time
_TOPIC_CACHE = 100_000  # parsed topics the parser remembers (a fleet's devices repeat theirs)
_MAX_CLASSES = 1_000_000  # devices whose class the parser remembers; past that it starts afresh
_UNSEEN: Any = object()
_SHARE_NAME = re.compile(NAME)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """How one gateway worker ingests: its MQTT identity, subscriptions and batching."""

    client_id: str = "replenish-gateway"
    share_group: str | None = None  # an MQTT 5 shared subscription for telemetry, between workers
    mqtt_version: int | None = None  # 4 (3.1.1), 5, or None: 5 when the broker speaks it
    batch_size: int = 10000
    batch_wait: float = 0.02  # seconds a trickle waits for company before it is stored
    writers: int = 2
    topics: Topics = DEFAULT_TOPICS
    device_burst: int = DEFAULT_BURST  # messages a device may send at once (gateway.protocol.budget)
    device_per_minute: float = DEFAULT_PER_MINUTE  # and each minute after that; beyond, counted and dropped

    def __post_init__(self) -> None:
        if self.share_group is not None and not _SHARE_NAME.fullmatch(self.share_group):
            raise ValueError(f"share group must be 1-64 of [A-Za-z0-9_-], got {self.share_group!r}")
        if self.share_group and self.mqtt_version == V311:
            raise ValueError("a shared subscription (share_group) needs MQTT 5")
        if self.writers < 1:
            raise ValueError(f"writers must be at least 1, got {self.writers}")
        DeviceBudget(self.device_burst, self.device_per_minute)  # refuses nonsense values here, not at the first message

    def subscriptions(self) -> tuple[str, ...]:
        """Birth and status on every worker (retained, and never sent to shared subscriptions); telemetry shared."""
        telemetry = self.topics.every("telemetry")
        if self.share_group:
            telemetry = f"$share/{self.share_group}/{telemetry}"
        return (self.topics.every("birth"), telemetry, self.topics.every("status"))

    def receive_window(self) -> int:
        """How many messages may be unacknowledged at the broker (MQTT 5 Receive Maximum).

        Acknowledging after commit keeps this many waiting: the batches being stored, those parsed
        and waiting, and room for the broker to keep sending meanwhile. With 3.1.1 the broker's
        own limit applies (Mosquitto's max_inflight_messages). A window only as deep as the
        pipeline stalled delivery after every commit.
        """
        return min(max((self.writers + 2) * self.batch_size + 2 * CHUNK * 10, 1000), 0xFFFF)

    def version(self) -> int | None:
        """The MQTT version to ask the broker for: 5 whenever telemetry is shared."""
        return 5 if self.share_group else self.mqtt_version


@dataclass(slots=True)
class TelemetryOp:
    """One telemetry message, parsed."""

    delivery: Delivery
    message: TelemetryIn


@dataclass(slots=True)
class TelemetryRun:
    """Consecutive telemetry messages of a chunk, prepared for the database."""

    deliveries: list[Delivery]
    messages: list[TelemetryIn]
    prepared: PreparedTelemetry


@dataclass(slots=True)
class BirthOp:
    """A device's birth, to store before any telemetry after it."""

    delivery: Delivery
    device_id: str
    birth: Birth


@dataclass(slots=True)
class StatusOp:
    """A device went online or offline."""

    delivery: Delivery
    device_id: str
    online: bool


@dataclass(slots=True)
class RejectOp:
    """A message that is dead-lettered with its reason."""

    delivery: Delivery
    reason: str
    detail: str


@dataclass(slots=True)
class OverBudgetOp:
    """A note that a device sent more than its budget: kept as a dead letter (`over_budget`), not counted again as rejected."""

    delivery: Delivery  # the dropped message that prompted the note: its topic, and its bytes as a sample
    detail: str  # how many were dropped since when (gateway.protocol.budget.note_detail)


Op = TelemetryOp | TelemetryRun | BirthOp | StatusOp | RejectOp | OverBudgetOp


def ordered(ops: Sequence[Op]) -> bool:
    """Whether a chunk holds a birth: stored in arrival order with the telemetry around it (it may announce slots).

    A status is not a barrier: whether a device is online, and when it was last seen, does not
    depend on the order it is stored in with telemetry. (It was one, and a flood of statuses from
    one device serialised everyone's telemetry: 20,000 readings took 94 s instead of 1.7 s.)
    """
    return any(type(op) is BirthOp for op in ops)


def coalesced(ops: list[Op]) -> list[Op]:
    """The chunk's ops without those a later op of the same device supersedes, so that a flood costs one write a chunk.

    A status is superseded by the device's later status in the chunk; a birth by its later birth
    when none of the device's telemetry comes between them (a birth must precede the telemetry
    that may use its slots). Every delivery is still acknowledged: only the writes are saved.
    """
    keep: list[Op] = []
    status_after: set[str] = set()
    birth_after: set[str] = set()
    for op in reversed(ops):
        if type(op) is StatusOp:
            if op.device_id in status_after:
                continue
            status_after.add(op.device_id)
        elif type(op) is BirthOp:
            if op.device_id in birth_after:
                continue
            birth_after.add(op.device_id)
        elif birth_after and (type(op) is TelemetryRun or type(op) is TelemetryOp):
            birth_after.difference_update(m.device_id for m in (op.messages if type(op) is TelemetryRun else (op.message,)))  # type: ignore[union-attr]
        keep.append(op)
    keep.reverse()
    return keep


class Parser:
    """Turns deliveries into ops, with no database work: parsing, the clock check, telemetry laid out for the writers."""

    def __init__(self, topics: Topics, prepare: Callable[[Sequence[TelemetryIn]], PreparedTelemetry], budget: DeviceBudget | None = None) -> None:
        self.topics = topics
        self.prepare = prepare
        self.budget = budget or DeviceBudget()
        self._cache: dict[str, DeviceTopic | None] = {}  # used by the parse thread only
        # device -> [when it was last noted (service clock), messages dropped since, when the first of them came]
        self._over: dict[str, list[Any]] = {}
        self._classes: dict[str, str] = {}  # device -> its class (gateway.protocol.device_class), from births

    def learn_kinds(self, kinds: Mapping[str, str | None]) -> None:
        """Remember devices' kinds (from births, or the registry at start) to label what they flood with by device class."""
        if len(self._classes) + len(kinds) > _MAX_CLASSES:
            self._classes.clear()
        self._classes.update((device_id, device_class(kind)) for device_id, kind in kinds.items())

    def parse(self, batch: list[Delivery]) -> list[Op]:
        """Each delivery as what to store, or why it is rejected; consecutive telemetry as one prepared `TelemetryRun`.

        A run is gathered as two plain lists (deliveries, messages) rather than an op per message:
        an op's construction for each telemetry message was 5 % of the parse path.
        """
        out: list[Op] = []
        deliveries: list[Delivery] = []
        messages: list[TelemetryIn] = []
        kinds: Counter[str] = Counter()
        over: Counter[tuple[str, str]] = Counter()  # (message kind, device class) -> messages dropped
        cache = self._cache
        if len(cache) > _TOPIC_CACHE:
            cache.clear()
        for item in batch:
            topic = cache.get(item.topic, _UNSEEN)
            if topic is _UNSEEN:
                topic = cache[item.topic] = self.topics.parse(item.topic)
            op: Op | TelemetryIn | None
            if topic is None:
                op = RejectOp(item, "bad_topic", "not a protocol v1 device topic")
            elif not self.budget.allow(topic.device_id, item.arrived):
                over[topic.suffix, self._classes.get(topic.device_id, "unknown")] += 1
                if (op := self._note_over_budget(topic.device_id, item)) is None:
                    continue
            else:
                kinds[topic.suffix] += 1
                try:
                    op = self._one(item, topic)
                except InvalidMessage as exc:
                    op = RejectOp(item, exc.reason, str(exc))
                except Exception as exc:  # noqa: BLE001 - a parser bug must cost one message, never the stream
                    log.exception("parsing a message on %s failed", item.topic)
                    op = RejectOp(item, "parse_error", f"{type(exc).__name__}: {exc}"[:400])
            if type(op) is TelemetryIn:
                deliveries.append(item)
                messages.append(op)
            elif op is not None:
                self._close_run(deliveries, messages, out)
                out.append(op)
        self._close_run(deliveries, messages, out)
        for kind, n in kinds.items():
            MESSAGES.labels(kind).inc(n)
        if over:
            REJECTED.labels("over_budget").inc(sum(over.values()))
            for (kind, cls), n in over.items():
                OVER_BUDGET.labels(kind, cls).inc(n)
        return coalesced(out)

    def _note_over_budget(self, device_id: str, item: Delivery) -> OverBudgetOp | None:
        """Count a message dropped over its device's budget; once a minute at most (on the service's clock), a note of how many.

        The note is logged, and stored by a writer as a dead letter (this thread has no database):
        what a flood costs per dropped message is a dict lookup and an addition.
        """
        note = self._over.get(device_id)
        if note is None:
            if len(self._over) > _TOPIC_CACHE:
                self._over.clear()
            note = self._over[device_id] = [None, 0, item.received_at]
        if note[1] == 0:
            note[2] = item.received_at
        note[1] += 1
        if note[0] is not None and item.received_at - note[0] < NOTE_EVERY:
            return None
        dropped, since = note[1], note[2]
        note[0], note[1] = item.received_at, 0
        detail = note_detail(dropped, since, self.budget.burst, self.budget.rate * 60)
        log.warning("device %s: %s; its extra messages are dropped", device_id, detail)
        return OverBudgetOp(item, detail)

    def _one(self, item: Delivery, topic: DeviceTopic) -> Op | TelemetryIn | None:
        """One delivery on a device topic as an op, or telemetry as it joins a run (None: an empty retained birth clears one)."""
        if topic.suffix == "telemetry":
            telemetry = parse_telemetry(item.payload, topic.device_id)
            if telemetry.ts - item.received_at > MAX_AHEAD:
                raise InvalidMessage("bad_timestamp", f"'ts' is {telemetry.ts - item.received_at} ahead of the gateway's clock (at most {MAX_AHEAD})")
            return TelemetryIn(topic.device_id, telemetry, item.received_at)
        if topic.suffix == "birth":
            if not item.payload:
                return None
            birth = parse_birth(item.payload, topic.device_id)
            self.learn_kinds({topic.device_id: birth.kind})
            return BirthOp(item, topic.device_id, birth)
        if topic.suffix == "status":
            return StatusOp(item, topic.device_id, parse_status(item.payload, topic.device_id))
        return None

    def _close_run(self, deliveries: list[Delivery], messages: list[TelemetryIn], out: list[Op]) -> None:
        if not deliveries:
            return
        run, msgs = list(deliveries), list(messages)
        deliveries.clear()
        messages.clear()
        try:
            out.append(TelemetryRun(run, msgs, self.prepare(msgs)))
        except Exception:  # noqa: BLE001 - the database is away (a new device's clock): writers prepare and retry
            log.exception("preparing %d telemetry messages failed; the writer will", len(run))
            out += [TelemetryOp(d, m) for d, m in zip(run, msgs, strict=True)]


class Parsed:
    """Parsed chunks waiting for a writer; `take` hands over whole chunks, in order, up to a size.

    Writers store batches side by side, so batches may commit out of order. That is harmless
    for telemetry (readings are appended, and settle orders them by time) but not for a birth
    or a status: a birth must be stored before the telemetry that follows it, which it may
    announce slots for. A chunk holding either is a barrier: it waits until every batch before
    it has been stored, and no later batch starts until it has been.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit  # the parser waits while this many deliveries are waiting
        self._chunks: deque[tuple[list[Delivery], list[Op], bool]] = deque()
        self._size = 0
        self._busy = 0  # batches handed out and not yet done
        self._barrier = False  # an ordered chunk is being stored
        self._closed = False
        self._cond = threading.Condition()

    def put(self, batch: list[Delivery], ops: list[Op]) -> None:
        """Queue a parsed chunk (waits while the queue is full)."""
        barrier = ordered(ops)
        with self._cond:
            while self._size >= self._limit and not self._closed:
                self._cond.wait()
            self._chunks.append((batch, ops, barrier))
            self._size += len(batch)
            self._cond.notify_all()

    def close(self) -> None:
        """No more chunks: writers drain what is left, then `take` returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, most: int) -> tuple[list[Delivery], list[Op], bool] | None:
        """The next batch and whether it is a barrier; call `done` with that flag once it is stored."""
        with self._cond:
            while not self._ready():
                if self._closed and not self._chunks:
                    return None
                self._cond.wait()
            batch, ops, barrier = self._chunks.popleft()
            batch, ops = list(batch), list(ops)
            while not barrier and self._chunks and not self._chunks[0][2] and len(batch) + len(self._chunks[0][0]) <= most:
                more, more_ops, _ = self._chunks.popleft()
                batch += more
                ops += more_ops
            self._size -= len(batch)
            self._busy += 1
            self._barrier = barrier
            self._cond.notify_all()
            return batch, ops, barrier

    def oldest(self) -> float | None:
        """When the oldest delivery waiting here arrived (time.monotonic()), if any waits."""
        with self._cond:
            return self._chunks[0][0][0].arrived if self._chunks and self._chunks[0][0] else None

    def done(self, barrier: bool) -> None:
        """A batch from `take` is stored."""
        with self._cond:
            self._busy -= 1
            if barrier:
                self._barrier = False
            self._cond.notify_all()

    def _ready(self) -> bool:
        if not self._chunks or self._barrier:
            return False
        return not self._chunks[0][2] or self._busy == 0
