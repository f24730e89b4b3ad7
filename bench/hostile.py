"""A well-behaved fleet's ingest beside one hostile device, on the machine's Mosquitto (issue 10, item 9).

Run: .venv/bin/python bench/hostile.py [--seconds 20] [--devices 500] [--rate 3000]
     [--backends postgres,sqlite] [--patterns poison_bytes,status_flood,telemetry_flood,oversized]
     [--broker shipped|HOST:PORT]

Each phase runs the gateway's real ingest (`build_ingestor` on a fresh, migrated database) on
the machine's Mosquitto under a topic namespace of its own, so that nothing left on that broker
reaches it. `--broker shipped` (the default) starts the machine's Mosquitto binary on a free port
with the limits of the shipped config (deploy/mosquitto/mosquitto.conf: max_packet_size, the
queue and in-flight limits; anonymous, in memory); `--broker 127.0.0.1:1883` uses the machine's
running Mosquitto as it is configured (Debian's defaults: 1,000 queued messages a client, no
packet limit). `--devices` good two-slot devices (births and telemetry consent
recorded) publish QoS 1 telemetry from two processes, paced at `--rate` messages/s for
`--seconds`, each message's `ts` the time it is sent. First they publish alone; then beside one
device (`bad-0`, registered like them) publishing from its own process:

- poison_bytes: raw NUL bytes, `\\u0000` in slot keys, lone surrogates, invalid UTF-8, control and
  bidi characters, deep nesting, huge numbers, at a steady 100 messages/s;
- status_flood: `status` messages, as fast as it can;
- telemetry_flood: valid telemetry, as fast as it can (its budget: 2,500 at once, 60 a minute);
- oversized: otherwise valid telemetry of 65-66 KiB (past the gateway's 64 KiB, within the
  shipped packet limit) and of 100-200 KiB (past it: the shipped broker disconnects the device,
  which connects again at once), in turn, at a steady 100 messages/s.

The hostile publisher runs at the lowest CPU priority (nice 19): on this 2-core machine its own
CPU, which in life is the attacker's, would otherwise be taken from the broker and the gateway,
whose work for the flood is what is measured. A flood is as fast as the rest of the CPU allows.

Per phase: the good fleet's readings committed per second while it publishes (`count(*)` of its
rows when its publishers start and when they finish), as a ratio to its rate alone (target >= 0.8);
the latency from publish (the device timestamp) to the poll that first saw each row (a poller
every 5 ms: ids above the highest seen, and ids below it that committed late); lost and duplicated
readings (each (device, slot, seq) exactly once; target 0); and what the gateway counted (rejected
by reason, over budget by kind, quarantined), from prometheus_client's registry. Each phase ends
when the gateway has drained (nothing pending); its broker session is then ended.
Prints a line per phase and, as the last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The ingest bench's MQTT framing, fresh databases, and registration of two-slot devices.
from ingest import _frame, _utf8, database, mosquitto, register

SHIPPED_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"
_LIMITS = ("max_packet_size", "max_queued_messages", "max_queued_bytes", "max_inflight_messages", "max_keepalive")
PATTERNS = ("poison_bytes", "status_flood", "telemetry_flood", "oversized")
GOOD, BAD = "good-", "bad-0"
GOOD_PROCS = 2  # publisher processes of the good fleet; the hostile device has one of its own
STEADY = {"poison_bytes": 100.0, "oversized": 100.0}  # messages/s; a flood is unpaced (0)
KIB = 1024
_WINDOW = 8000  # unacknowledged publishes per publisher; below 65535 so packet ids never collide
_POLL_S = 0.005
_LATE_S = 2.0  # how long after a higher id a reading may still commit and be noticed (two writers commit out of order)
_COUNTED = {
    "replenish_gateway_messages_total": "received",  # within budget, by kind
    "replenish_gateway_rejected_total": "rejected",
    "replenish_gateway_over_budget_total": "over_budget",
    "replenish_gateway_quarantined_total": "quarantined",
}
_POISON = (  # each with the message's seq and ts
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":50}}\x00',  # a raw NUL after the document
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"bl\x00ack":50}}',  # a raw NUL in a slot key
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"bl\\u0000ack":50}}',  # an escaped NUL in a slot key
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"\\ud800":50}}',  # a lone surrogate
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"bl\xffack":50}}',  # invalid UTF-8
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"bl\\u0007ack":50,"c\\u001b[31m":50}}',  # control characters
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"bl\xe2\x80\xaeack":50,"\\u2066x":50}}',  # a raw bidi override, an escaped isolate
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":1e400}}',  # past a float's range
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":' + b"9" * 400 + b"}}",  # a 400-digit integer
    b'{"v":1,"seq":1%d00000000000000000000,"ts":"%s","levels":{"black":50}}',  # a seq past 64 bits
    b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":50},"x":' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep nesting
)


# -- devices: raw MQTT 3.1.1 publishers, in processes of their own ------------------------------


def connect(broker: tuple[str, int], client_id: str) -> socket.socket:
    """A raw MQTT 3.1.1 connection with a clean session (which ends any earlier session of the client id)."""
    sock = socket.create_connection(broker)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_frame(0x10, _utf8("MQTT") + b"\x04\x02\x00\x3c" + _utf8(client_id)))
    if sock.recv(4)[3:4] != b"\x00":
        raise SystemExit(f"the broker refused {client_id}")
    return sock


def good_messages(root: str, devices: list[str], per_device: int) -> Iterator[tuple[bytes, bytes]]:
    """Every device's telemetry, round robin; `ts` is the time of sending, which latency is measured from."""
    topics = [_utf8(f"{root}/{d}/telemetry") for d in devices]
    for seq in range(per_device):
        level = b"%.1f" % (100 - (seq % 1000) * 0.1)
        for topic in topics:
            ts = datetime.now(UTC).isoformat().encode()
            yield topic, b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":%s,"color":%s}}' % (seq, ts, level, level)


def hostile_messages(pattern: str, root: str) -> Iterator[tuple[bytes, bytes]]:
    """The hostile device's endless stream of one pattern."""
    telemetry, status = _utf8(f"{root}/{BAD}/telemetry"), _utf8(f"{root}/{BAD}/status")
    pad = b"x" * (200 * KIB)
    for n in itertools.count():
        ts = datetime.now(UTC).isoformat().encode()
        if pattern == "poison_bytes":
            yield telemetry, _POISON[n % len(_POISON)] % (n, ts)
        elif pattern == "status_flood":
            yield status, b'{"v":1,"state":"%s"}' % (b"online" if n % 2 else b"offline")
        elif pattern == "telemetry_flood":
            yield telemetry, b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":50,"color":50}}' % (n, ts)
        else:  # oversized: 65-66 KiB (the gateway refuses it), then 100-200 KiB (the shipped broker does)
            size = (65 + n % 2) * KIB if n % 2 == 0 else (100 + n % 101) * KIB
            yield telemetry, b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":50},"pad":"%s"}' % (n, ts, pad[:size])


def _acks(sock: socket.socket, sent: int, acked: int, tail: bytes, most_waiting: int) -> tuple[int, bytes]:
    """Read PUBACKs (4 bytes each), blocking while more than `most_waiting` are due, then whatever has arrived."""
    while True:
        sock.setblocking(sent - acked > most_waiting)
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return acked, tail
        if not data:
            raise ConnectionError("the broker closed the connection")
        tail += data
        acked, tail = acked + len(tail) // 4, tail[len(tail) - len(tail) % 4 :]


def send(role: str, broker: tuple[str, int], root: str, devices: list[str], per_device: int, rate: float, seconds: float, start: Any, sent: Any) -> None:
    """One publisher process: its share of the good fleet (`role` "good", all of it) or the hostile stream for `seconds`; paced when `rate`.

    The hostile device runs at nice 19, and connects again whenever the broker disconnects it.
    """
    hostile = role != "good"
    if hostile:
        os.nice(19)
    messages = hostile_messages(role, root) if hostile else good_messages(root, devices, per_device)
    chunk = max(1, min(200, int(rate / 100))) if rate else 200  # paced: about 100 writes a second
    client_id = "bench-hostile-pub-" + uuid.uuid4().hex[:10]
    sock = connect(broker, client_id)
    start.wait(60)
    t0 = time.monotonic()
    total = n = acked = mid = 0
    tail = b""
    while not hostile or time.monotonic() - t0 < seconds:
        frames = []
        for topic, payload in itertools.islice(messages, chunk):
            mid = mid % 0xFFFF + 1
            frames.append(_frame(0x32, topic + mid.to_bytes(2, "big") + payload))
        if not frames:
            break
        total += len(frames)
        try:
            sock.sendall(b"".join(frames))
            n += len(frames)
            acked, tail = _acks(sock, n, acked, tail, _WINDOW)
        except OSError:  # ConnectionError included: only the hostile device is ever disconnected
            if not hostile:
                raise
            sock.close()
            sock, n, acked, tail = connect(broker, client_id), 0, 0, b""
            sent[1] += 1
        if rate and (pause := t0 + total / rate - time.monotonic()) > 0:
            time.sleep(pause)
    try:
        _acks(sock, n, acked, tail, 0)
        sock.sendall(b"\xe0\x00")
    except OSError:
        if not hostile:
            raise
    sock.close()
    sent[0] = total


# -- the gateway's side --------------------------------------------------------------------------


class CommitPoller:
    """Notes when each good reading's row first becomes visible, from a thread of the gateway's process."""

    NEW = f"SELECT id FROM gw_readings WHERE id > :hi AND device_id LIKE '{GOOD}%' ORDER BY id"
    BETWEEN = f"SELECT {{what}} FROM gw_readings WHERE id > :lo AND id <= :hi AND device_id LIKE '{GOOD}%'"

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.seen: dict[int, float] = {}  # row id -> time.time() of the first poll that saw it
        self._ids: list[int] = []  # the same ids, sorted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import sqlalchemy as sa

        new, count, between = sa.text(self.NEW), sa.text(self.BETWEEN.format(what="count(*)")), sa.text(self.BETWEEN.format(what="id"))
        hi, lo, marks = 0, 0, deque[tuple[float, int]]()
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                now = time.time()
                for row_id in conn.execute(new, {"hi": hi}).scalars():
                    self.seen[row_id] = now
                    self._ids.append(row_id)
                hi = self._ids[-1] if self._ids else 0
                marks.append((now, hi))
                while marks[0][0] < now - _LATE_S:
                    lo = marks.popleft()[1]
                # A reading committed after a higher id was seen: found by counting the ids below `hi`.
                known = bisect.bisect_right(self._ids, hi) - bisect.bisect_right(self._ids, lo)
                if conn.execute(count, {"lo": lo, "hi": hi}).scalar_one() > known:
                    for row_id in conn.execute(between, {"lo": lo, "hi": hi}).scalars():
                        if row_id not in self.seen:
                            self.seen[row_id] = now
                            bisect.insort(self._ids, row_id)
                conn.rollback()
                time.sleep(_POLL_S)


def good_count(engine: Any) -> int:
    """Good readings committed."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM gw_readings WHERE device_id LIKE '{GOOD}%'")).scalar_one())


def counters() -> dict[tuple[str, str], float]:
    """The gateway's message counters (received, rejected, over budget, quarantined), by name and label, as prometheus_client's registry has them now."""
    from prometheus_client import REGISTRY

    return {(_COUNTED[s.name], "/".join(s.labels.values())): s.value for m in REGISTRY.collect() for s in m.samples if s.name in _COUNTED}


def counted(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, dict[str, int]]:
    """What the counters rose by, nested by counter and label."""
    out: dict[str, dict[str, int]] = {}
    for (name, label), value in sorted(after.items()):
        if rise := round(value - before.get((name, label), 0.0)):
            out.setdefault(name, {})[label] = rise
    return out


def publish(engine: Any, broker: tuple[str, int], root: str, devices: list[str], per_device: int, rate: float, seconds: float, pattern: str | None) -> dict[str, Any]:
    """Run the good fleet's publishers (and the hostile one's) at once; the good rate is measured while the fleet publishes."""
    ctx = mp.get_context("spawn")
    roles = [("good", devices[i::GOOD_PROCS], rate / GOOD_PROCS) for i in range(GOOD_PROCS)]
    roles += [(pattern, [], STEADY.get(pattern, 0.0))] if pattern else []
    start, sent = ctx.Barrier(len(roles) + 1), [ctx.Array("q", 2) for _ in roles]  # messages sent, reconnects
    procs = [ctx.Process(target=send, args=(role, broker, root, share, per_device, r, seconds, start, s)) for (role, share, r), s in zip(roles, sent, strict=True)]
    for p in procs:
        p.start()
    start.wait(60)  # every publisher has connected
    t0, started_at, before = time.monotonic(), time.time(), good_count(engine)
    for p in procs[:GOOD_PROCS]:
        p.join()
    took, during = time.monotonic() - t0, good_count(engine) - before
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a publisher failed with {p.exitcode}")
    out = {"good_per_s": round(during / took), "offered_per_s": round(len(devices) * per_device / took), "started_at": started_at}
    if pattern:
        out |= {"hostile_sent": sent[-1][0], "hostile_per_s": round(sent[-1][0] / seconds), "hostile_reconnects": sent[-1][1]}
    return out


def drain(ingestor: Any, engine: Any, expected: int, timeout: float = 120.0) -> float:
    """Wait until nothing is pending and the good count holds still (1 s once complete, 3 s short of it); returns the seconds waited."""
    t0 = since = time.monotonic()
    last = -1
    while (now := time.monotonic()) - t0 < timeout:
        n, pending = good_count(engine), ingestor.pending
        if n != last or pending:
            last, since = n, now
        elif now - since >= (1.0 if n >= expected else 3.0):
            break
        time.sleep(0.1)
    return round(time.monotonic() - t0, 1)


def tally(engine: Any, seen: dict[int, float], expected: int) -> dict[str, Any]:
    """Latency publish -> committed of every good reading, lost and duplicated ones, and the hostile device's stored readings."""
    import sqlalchemy as sa

    from gateway import UTCDateTime

    q = f"FROM gw_readings WHERE device_id LIKE '{GOOD}%'"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, device_ts {q}").columns(device_ts=UTCDateTime())).all()
        distinct = conn.execute(sa.text(f"SELECT count(*) FROM (SELECT 1 {q} GROUP BY device_id, slot_id, seq) AS k")).scalar_one()
        hostile = conn.execute(sa.text("SELECT count(*) FROM gw_readings WHERE device_id = :d"), {"d": BAD}).scalar_one()
        letters = dict(conn.execute(sa.text("SELECT reason, count(*) FROM gw_dead_letters GROUP BY reason ORDER BY reason")).all())
    end = time.time()  # a row the poller never saw (committed later than _LATE_S out of order) counts as seen now
    lat = sorted(seen.get(row_id, end) - ts.timestamp() for row_id, ts in rows)

    def pick(q: float) -> float | None:
        return round(lat[min(int(q * len(lat)), len(lat) - 1)] * 1000, 1) if lat else None

    return {
        "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0),
        "lost": expected - distinct, "duplicated": len(rows) - distinct, "unseen_by_poller": sum(r[0] not in seen for r in rows),
        "hostile_stored": hostile, "dead_letters": letters,
    }  # fmt: skip


def phase(backend: str, broker: tuple[str, int], devices: list[str], pattern: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """The good fleet alone (`pattern` None) or beside the hostile device, on a fresh database and topic namespace, drained and tallied."""
    from gateway import GatewayStorage, IngestOptions, MqttTarget, Topics, WallClock, make_engine
    from replenish.bootstrap import build_ingestor

    topics = Topics("bench-hostile-" + uuid.uuid4().hex[:10])
    per_device = max(round(args.rate * args.seconds / len(devices)), 1) if args.rate else args.per_device
    expected = per_device * len(devices) * 2  # two slots each
    with database(backend) as url:
        register(url, [*devices, BAD])
        engine = make_engine(url)
        options = IngestOptions(client_id="bench-hostile-gw-" + uuid.uuid4().hex[:8], topics=topics)
        ingestor = build_ingestor(GatewayStorage.on(engine), WallClock(), MqttTarget(*broker), options)
        ingestor.start()
        poller, before = CommitPoller(engine), counters()
        poller.start()
        try:
            out = publish(engine, broker, topics.root, devices, per_device, args.rate, args.seconds, pattern)
            out["drain_s"] = drain(ingestor, engine, expected)
        finally:
            poller.stop()
            ingestor.stop()
            connect(broker, options.client_id).close()  # a clean session ends the gateway's on the broker
        out |= tally(engine, poller.seen, expected) | {"gateway_counted": counted(before, counters())}
        if not args.rate:  # unpaced: the fleet's readings over the time until the last of them was committed
            out["good_per_s"] = round(len(poller.seen) / (max(poller.seen.values(), default=0.0) - out["started_at"]))
        engine.dispose()
    # The good telemetry the gateway received: its count of telemetry within budget, less the hostile
    # device's (stored, two readings each, or dead-lettered); what is missing never left the broker.
    received = out["gateway_counted"].get("received", {}).get("telemetry", 0)
    rejected = sum(n for reason, n in out["dead_letters"].items() if reason != "over_budget")  # a note a minute, not a message
    out["good_received"] = received - out["hostile_stored"] // 2 - rejected
    out["good_sent"] = per_device * len(devices)
    return out


@contextmanager
def broker_at(spec: str) -> Iterator[tuple[tuple[str, int], dict[str, str]]]:
    """The broker to run on, and the shipped limits it was started with (none for a running broker named HOST:PORT)."""
    if spec != "shipped":
        host, _, port = spec.rpartition(":")
        yield (host or "127.0.0.1", int(port)), {}
        return
    limits = {}
    for line in SHIPPED_CONF.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key in _LIMITS:
            limits[key] = value.strip()
    if set(limits) != set(_LIMITS):
        raise SystemExit(f"{SHIPPED_CONF} no longer sets {sorted(set(_LIMITS) - set(limits))}")
    with mosquitto(limits) as port:
        yield ("127.0.0.1", port), limits


def report(backend: str, name: str, res: dict[str, Any]) -> None:
    """One readable line per phase."""
    ratio = f" ({res['ratio_vs_alone']}x alone)" if "ratio_vs_alone" in res else ""
    hostile = ""
    if "hostile_sent" in res:
        counts = {k: v for k, v in res["gateway_counted"].items() if k != "received"}
        hostile = f"; hostile sent {res['hostile_sent']} ({res['hostile_per_s']}/s, {res['hostile_reconnects']} reconnects), stored {res['hostile_stored']}, gateway counted {counts}"
    print(
        f"{backend} {name}: good {res['good_per_s']} readings/s{ratio} of {res['offered_per_s']} msg/s offered, p50 {res['p50_ms']} / p99 {res['p99_ms']} ms, "
        f"lost {res['lost']}, duplicated {res['duplicated']} (gateway received {res['good_received']} of {res['good_sent']}), drained in {res['drain_s']} s{hostile}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds each phase publishes")
    ap.add_argument("--devices", type=int, default=500, help="good devices, two slots each")
    ap.add_argument("--rate", type=float, default=3000.0, help="good telemetry messages offered a second, in all; 0: unpaced, as fast as the gateway takes them")
    ap.add_argument("--per-device", type=int, default=120, help="messages each good device sends when unpaced (--rate 0)")
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument("--patterns", default=",".join(PATTERNS))
    ap.add_argument("--broker", default="shipped", help="'shipped': the machine's Mosquitto binary with the shipped limits, on a free port; or HOST:PORT of a running one")
    args = ap.parse_args()
    from gateway import IngestOptions

    patterns = [p for p in args.patterns.split(",") if p]
    if unknown := set(patterns) - set(PATTERNS):
        raise SystemExit(f"unknown patterns {sorted(unknown)}; known: {', '.join(PATTERNS)}")
    devices = [f"{GOOD}{i:05d}" for i in range(args.devices)]
    budget = IngestOptions()
    if (args.rate * args.seconds / len(devices) if args.rate else args.per_device) > budget.device_burst + budget.device_per_minute * args.seconds / 60:
        raise SystemExit("each good device would send past its budget (gateway/protocol/budget.py): add --devices")
    backends = [b for b in args.backends.split(",") if b]
    out: dict[str, Any] = {"bench": "hostile", "broker": args.broker, "devices": len(devices), "rate": args.rate, "seconds": args.seconds, "steady_hostile_per_s": STEADY}
    with broker_at(args.broker) as (broker, limits):
        out["broker_limits"] = limits
        print(f"broker {broker[0]}:{broker[1]} ({args.broker}), limits {limits or 'as configured there'}", flush=True)
        for backend in backends:
            alone = phase(backend, broker, devices, None, args)
            report(backend, "alone", alone)
            results: dict[str, Any] = {}
            for pattern in patterns:
                res = results[pattern] = phase(backend, broker, devices, pattern, args)
                res["ratio_vs_alone"] = round(res["good_per_s"] / alone["good_per_s"], 2)
                report(backend, pattern, res)
            out.setdefault("backends", {})[backend] = {"alone": alone, "patterns": results}
    # The headline: the first backend's figures (PostgreSQL by default, the documented deployment).
    first = out["backends"][backends[0]]["patterns"]
    out["patterns"] = {name: {k: r[k] for k in ("ratio_vs_alone", "p99_ms", "lost", "duplicated")} | {"backend": backends[0]} for name, r in first.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
