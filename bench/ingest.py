"""Ingest throughput from a real Mosquitto into the database, against a bare paho subscriber and mosquitto_sub.

Run: .venv/bin/python bench/ingest.py [--messages 150000] [--devices 1000] [--publishers 4] [--backends postgres,sqlite] [--rounds 3]

Throughput: every subscriber (mosquitto_sub, a paho client that only parses the JSON, and the
gateway's Ingestor once per database) holds a persistent QoS 1 session on a Mosquitto of our
own; publisher processes fill every session with the same backlog while the subscribers are
away, then each subscriber alone drains it and is timed. Publishers are thus never the
bottleneck, and every subscriber sees the same broker. This repeats for `--rounds` backlogs
(3): each round's ratios compare runs seconds apart, and the median round is reported, since
the 2-core machine is shared and a single drain swings by 20 %. Latency: publishers send live, paced at
half the gateway's drain rate, with the publish time as the device timestamp; a poller notes
when each row becomes visible. Every (device, slot, seq) must be stored exactly once.
Prints a human summary and, as the last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOPIC = "replenish/v1/devices/+/telemetry"
SLOTS = ("black", "color")
PG_ADMIN = os.environ.get("REPLENISH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
_WINDOW = 8000  # unacknowledged publishes per publisher; below 65535 so packet ids never collide
_CHUNK = 20  # messages per write


# -- devices: raw MQTT 3.1.1 publishers, so that publishing costs little CPU ---------------------


def _utf8(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def _frame(kind: int, body: bytes) -> bytes:
    n, head = len(body), bytearray((kind,))
    while True:
        n, digit = n >> 7, n & 0x7F
        head.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(head) + body


def publish(port: int, devices: list[str], per_device: int, first_seq: int, rate: float, ready: Any) -> None:
    """One publisher process: `per_device` QoS 1 telemetry messages per device, round robin, optionally paced."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_frame(0x10, _utf8("MQTT") + b"\x04\x02\x00\x3c" + _utf8("pub-" + uuid.uuid4().hex[:10])))
    if sock.recv(4)[3:4] != b"\x00":
        raise SystemExit("publisher refused")
    topics = {d: _utf8(f"replenish/v1/devices/{d}/telemetry") for d in devices}
    sent = acked = 0
    tail = b""
    mid = 0
    if ready is not None:
        ready.wait()
    t0 = time.monotonic()
    # Small chunks, each paced: devices report independently, not in one burst per round.
    plan = [(seq, d) for seq in range(first_seq, first_seq + per_device) for d in devices]
    for lo in range(0, len(plan), _CHUNK):
        ts = datetime.now(UTC).isoformat().encode()
        frames = []
        for seq, d in plan[lo : lo + _CHUNK]:
            mid = mid % 0xFFFF + 1
            level = str(round(100 - (seq % 1000) * 0.1, 1)).encode()
            payload = b'{"v":1,"seq":%d,"ts":"%s","levels":{"black":%s,"color":%s}}' % (seq, ts, level, level)
            frames.append(_frame(0x32, topics[d] + mid.to_bytes(2, "big") + payload))
        sock.sendall(b"".join(frames))
        sent += len(frames)
        while True:
            sock.setblocking(sent - acked > _WINDOW)
            try:
                tail += sock.recv(1 << 16)
            except BlockingIOError:
                break
            acked, tail = acked + len(tail) // 4, tail[len(tail) - len(tail) % 4 :]  # PUBACKs are 4 bytes
        if rate:
            pause = t0 + sent / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    sock.setblocking(True)
    while acked < sent:
        tail += sock.recv(1 << 16)
        acked, tail = acked + len(tail) // 4, tail[len(tail) - len(tail) % 4 :]
    sock.sendall(b"\xe0\x00")
    sock.close()


def run_publishers(port: int, devices: list[str], per_device: int, procs: int, rate: float = 0.0, first_seq: int = 0) -> float:
    """Publish from `procs` processes; returns messages per second once they are all running."""
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    workers = [ctx.Process(target=publish, args=(port, devices[i::procs], per_device, first_seq, rate / procs, ready)) for i in range(procs)]
    for w in workers:
        w.start()
    time.sleep(1.0)  # let them import and connect
    ready.set()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
        if w.exitcode:
            raise SystemExit(f"publisher failed with {w.exitcode}")
    return len(devices) * per_device / (time.perf_counter() - t0)


# -- infrastructure ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mosquitto(limits: Mapping[str, int | str]) -> Iterator[int]:
    """Our own Mosquitto on a free port: anonymous, in memory, with these limits (mosquitto.conf settings)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type error\n" + "".join(f"{k} {v}\n" for k, v in limits.items()))
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)])
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, migrated database of one backend, dropped afterwards."""
    import psycopg
    import sqlalchemy as sa

    from gateway import make_engine
    from replenish.bootstrap import migrate

    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            migrate(make_engine(url))
            yield url
        return
    admin = sa.make_url(PG_ADMIN.replace("postgresql://", "postgresql+psycopg://", 1))
    name = "bench_ingest_" + uuid.uuid4().hex[:10]
    conninfo = f"host={admin.host} port={admin.port or 5432} user={admin.username} dbname={admin.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- subscribers ------------------------------------------------------------------------------


def mosquitto_sub(port: int, client_id: str, count: int | None) -> float:
    """Create the session (count None), or drain `count` messages and return messages per second."""
    args = [MOSQUITTO_SUB, "-p", str(port), "-c", "-i", client_id, "-q", "1", "-t", TOPIC]
    t0 = time.perf_counter()
    subprocess.run([*args, "-E"] if count is None else [*args, "-C", str(count)], check=True, stdout=subprocess.DEVNULL, timeout=300)
    return 0.0 if count is None else count / (time.perf_counter() - t0)


def paho_sub(port: int, client_id: str, count: int | None) -> float:
    """A bare paho subscriber that parses each payload and nothing else (it acknowledges on receipt)."""
    import paho.mqtt.client as mqtt

    done, seen = threading.Event(), [0]

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        json.loads(msg.payload)
        seen[0] += 1
        if count is not None and seen[0] >= count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(TOPIC, 1)
    t0 = time.perf_counter()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if count is None:
        time.sleep(0.5)
    elif not done.wait(300):
        raise SystemExit(f"paho received {seen[0]} of {count}")
    rate = 0.0 if count is None else count / (time.perf_counter() - t0)
    client.disconnect()
    client.loop_stop()
    return rate


def _stored() -> float:
    from prometheus_client import REGISTRY

    return sum(REGISTRY.get_sample_value("replenish_gateway_readings_total", {"outcome": o}) or 0.0 for o in ("stored", "duplicates"))


def gateway_sub(port: int, url: str, client_id: str, readings: int | None, batch_size: int, batch_wait: float, writers: int = 2) -> float:
    """The gateway's Ingestor on a fresh engine: create the session, or drain until `readings` are committed."""
    from gateway import GatewayStorage, IngestOptions, MqttTarget, WallClock, make_engine
    from replenish.bootstrap import build_ingestor

    engine = make_engine(url)
    options = IngestOptions(client_id=client_id, batch_size=batch_size, batch_wait=batch_wait, writers=writers)
    ingestor = build_ingestor(GatewayStorage.on(engine), WallClock(), MqttTarget("127.0.0.1", port), options)
    before = _stored()
    t0 = time.perf_counter()
    ingestor.start()
    rate = 0.0
    if readings is not None:
        deadline = time.monotonic() + 300
        while _stored() - before < readings:
            if time.monotonic() > deadline:
                raise SystemExit(f"gateway stored {_stored() - before} of {readings} readings")
            # Reading the registry costs ~0.35 ms of this process's GIL: polled every 2 ms it took
            # ~15 % from the gateway under test; every 20 ms it costs ~2 % and at most 20 ms of timing.
            time.sleep(0.02)
        rate = readings / len(SLOTS) / (time.perf_counter() - t0)
    ingestor.stop()
    engine.dispose()
    return rate


def register(url: str, devices: list[str]) -> None:
    """Birth and telemetry consent for every device, through the gateway's store."""
    from gateway import Birth, GatewayStorage, SlotSpec, make_engine

    engine = make_engine(url)
    store = GatewayStorage.on(engine).registry
    birth = Birth("bench-printer", "printer.inkjet", "1.0", tuple(SlotSpec(s, f"ink.{s}", "percent", 100.0) for s in SLOTS))
    now = datetime.now(UTC)
    for d in devices:
        store.record_birth(d, birth, now)
        store.set_store_readings(d, True)
    engine.dispose()


def check(url: str, expected: int) -> dict[str, int]:
    """Lost and duplicated readings: every (device, slot, seq) must be stored exactly once."""
    import sqlalchemy as sa

    from gateway import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM gw_readings")).scalar_one()
        distinct = conn.execute(sa.text("SELECT count(*) FROM (SELECT device_id, slot_id, seq FROM gw_readings GROUP BY device_id, slot_id, seq) AS k")).scalar_one()
    engine.dispose()
    return {"lost": expected - distinct, "duplicated": rows - distinct}


def settle(url: str) -> dict[str, Any]:
    """Time the Settler over everything the drains appended."""
    from gateway import GatewayStorage, make_engine

    engine = make_engine(url)
    t0 = time.perf_counter()
    folded = GatewayStorage.on(engine).settler.settle()
    took = time.perf_counter() - t0
    engine.dispose()
    return {"readings": folded, "seconds": round(took, 2), "readings_per_s": round(folded / took)}


def latency(port: int, url: str, devices: list[str], first_seq: int, rate: float, seconds: float, procs: int, batch_size: int, batch_wait: float) -> dict[str, float]:
    """Publish live at `rate`; from each row's device timestamp (the publish time) to the poll that first saw it."""
    import bisect

    import sqlalchemy as sa

    from gateway import GatewayStorage, IngestOptions, MqttTarget, WallClock, make_engine
    from replenish.bootstrap import build_ingestor

    engine = make_engine(url)
    ts_col = "device_ts" if "device_ts" in {c["name"] for c in sa.inspect(engine).get_columns("gw_readings")} else "ts"
    with engine.connect() as conn:
        first_id = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM gw_readings")).scalar_one()
    options = IngestOptions(client_id="gw-live-" + uuid.uuid4().hex[:6], batch_size=batch_size, batch_wait=batch_wait)
    ingestor = build_ingestor(GatewayStorage.on(engine), WallClock(), MqttTarget("127.0.0.1", port), options)
    ingestor.start()
    per_device = max(int(rate * seconds / len(devices)), 1)
    polls: list[tuple[int, float]] = []
    stop = threading.Event()

    def poll() -> None:
        with engine.connect() as conn:
            while not stop.is_set():
                polls.append((conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM gw_readings")).scalar_one(), time.time()))
                conn.rollback()
                time.sleep(0.002)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    before = _stored()
    offered = run_publishers(port, devices, per_device, procs, rate, first_seq)
    expected = per_device * len(devices) * len(SLOTS)
    deadline = time.monotonic() + 60
    while _stored() - before < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    stop.set()
    poller.join()
    ingestor.stop()
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, {ts_col} FROM gw_readings WHERE id > :i"), {"i": first_id}).all()
    engine.dispose()
    ids = [p[0] for p in polls]
    lat = []
    for row_id, ts in rows:
        ts = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
        k = bisect.bisect_left(ids, row_id)
        if k < len(polls):
            lat.append(polls[k][1] - ts.timestamp())
    lat.sort()
    pick = lambda q: lat[min(int(q * len(lat)), len(lat) - 1)] * 1000 if lat else float("nan")  # noqa: E731
    return {"offered_per_s": round(offered), "p50_ms": round(pick(0.5), 1), "p99_ms": round(pick(0.99), 1), "max_ms": round(lat[-1] * 1000, 1) if lat else float("nan"), "messages": per_device * len(devices)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=150_000, help="telemetry messages in each backlog (two readings each)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--publishers", type=int, default=4, help="publisher processes")
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument("--batch-size", type=int, default=10000, help="most messages a writer commits at once")
    ap.add_argument("--batch-wait", type=float, default=0.02, help="seconds the parser waits to fill a chunk")
    ap.add_argument("--writers", type=int, default=2, help="the gateway's store threads (IngestOptions(writers=...))")
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3, help="backlogs drained by every subscriber in turn; the median round is reported")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    devices = [f"bench-{i:05d}" for i in range(args.devices)]
    per_device = max(args.messages // args.devices, 1)
    n = per_device * len(devices)
    readings = n * len(SLOTS)
    out: dict[str, Any] = {"bench": "ingest", "messages": n, "devices": len(devices), "readings_per_message": len(SLOTS), "qos": 1}
    # Queues and in-flight windows that drop nothing.
    with mosquitto({"max_queued_messages": 4 * n * args.rounds, "max_inflight_messages": 65535, "max_keepalive": 3600}) as port, database_all(backends) as urls:
        for url in urls.values():
            register(url, devices)
        # Every subscriber's persistent session exists before the backlog is published.
        mosquitto_sub(port, "b-mosquitto-sub", None)
        paho_sub(port, "b-paho", None)
        for backend, url in urls.items():
            gateway_sub(port, url, f"b-gw-{backend}", None, args.batch_size, args.batch_wait)
        # Rounds: each publishes a fresh backlog to every session, then each subscriber drains it
        # in turn. The machine is shared and noisy, so each round's ratios compare subscribers
        # that ran within seconds of each other, and the median round is reported.
        runs: dict[str, list[float]] = {"mosquitto_sub": [], "paho": [], **{f"gateway_{b}": [] for b in urls}}
        for r in range(args.rounds):
            first = r * per_device
            out["publish_per_s"] = round(run_publishers(port, devices, per_device, args.publishers, first_seq=first))
            print(f"round {r + 1}: backlog of {n} messages published at {out['publish_per_s']}/s by {args.publishers} processes", flush=True)
            runs["mosquitto_sub"].append(mosquitto_sub(port, "b-mosquitto-sub", n))
            runs["paho"].append(paho_sub(port, "b-paho", n))
            for backend, url in urls.items():
                runs[f"gateway_{backend}"].append(gateway_sub(port, url, f"b-gw-{backend}", readings, args.batch_size, args.batch_wait, args.writers))
            print("  " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in runs.items()), flush=True)
        out["rounds"] = args.rounds
        out["mosquitto_sub_per_s"] = round(statistics.median(runs["mosquitto_sub"]))
        out["paho_per_s"] = round(statistics.median(runs["paho"]))
        print(f"mosquitto_sub drains {out['mosquitto_sub_per_s']}/s, bare paho {out['paho_per_s']}/s (medians)", flush=True)
        for backend, url in urls.items():
            rates = runs[f"gateway_{backend}"]
            vs_paho = [g / p for g, p in zip(rates, runs["paho"], strict=True)]
            vs_sub = [g / m for g, m in zip(rates, runs["mosquitto_sub"], strict=True)]
            res: dict[str, Any] = {
                "per_s": round(statistics.median(rates)),
                "vs_paho": round(statistics.median(vs_paho), 2),
                "vs_paho_rounds": [round(x, 2) for x in vs_paho],
                "vs_mosquitto_sub": round(statistics.median(vs_sub), 3),
            }
            res |= check(url, readings * args.rounds)
            print(
                f"gateway on {backend} drains {res['per_s']}/s ({res['vs_paho']}x paho, median of rounds {res['vs_paho_rounds']}), "
                f"lost {res['lost']}, duplicated {res['duplicated']}",
                flush=True,
            )
            out[f"gateway_{backend}"] = res
        # Settle: what ingest appended is folded into slot state by the serving process's tick; it
        # must keep up with ingest, or slot levels and forecasts fall behind.
        for backend, url in urls.items():
            out[f"gateway_{backend}"]["settle"] = settle(url)
            st = out[f"gateway_{backend}"]["settle"]
            st["vs_ingest"] = round(st["readings_per_s"] / (out[f"gateway_{backend}"]["per_s"] * len(SLOTS)), 2)
            print(f"settle on {backend}: {st['readings']} readings folded at {st['readings_per_s']}/s ({st['vs_ingest']}x the ingest rate)", flush=True)
        # Latency after every drain: each live phase also queues its messages for the other sessions.
        first_seq = per_device * args.rounds
        for backend, url in urls.items():
            res = out[f"gateway_{backend}"]
            live = latency(port, url, devices, first_seq, res["per_s"] / 2, args.latency_seconds, args.publishers, args.batch_size, args.batch_wait)
            first_seq += live["messages"] // len(devices)
            after = check(url, readings * args.rounds + live["messages"] * len(SLOTS))
            res["latency"] = live | {"lost": after["lost"], "duplicated": after["duplicated"] - res["duplicated"]}
            print(f"gateway on {backend}, live at {live['offered_per_s']}/s: p50 {live['p50_ms']} ms, p99 {live['p99_ms']} ms publish -> committed", flush=True)
    print(json.dumps(out))


@contextmanager
def database_all(backends: list[str]) -> Iterator[dict[str, str]]:
    """One fresh database per backend."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield {b: stack.enter_context(database(b)) for b in backends}


if __name__ == "__main__":
    main()
