"""Measure the fleet: connect N devices from one process and publish one round of telemetry.

    python -m firmware_sim.bench --devices 10000            # starts its own Mosquitto on a free port
    python -m firmware_sim.bench --devices 10000 --port 1883  # an existing broker instead

Reports the time until every device is connected (CONNACK), until every birth and status is
acknowledged, and until one round of telemetry is acknowledged (PUBACK) and received by a
subscriber (Mosquitto drops QoS 1 messages for a subscriber more than `max_queued_messages` behind,
1000 by default: the private broker raises it); plus the process's CPU time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from ._clock import SimClock
from ._fleet import Fleet, FleetDevice
from ._registry import KINDS
from ._truth import Quirks

__all__ = ["main", "mosquitto", "run"]

MOSQUITTO_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 100
log_dest stderr
log_type error
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mosquitto() -> Iterator[int]:
    """A private Mosquitto on a free port from a temporary config; yields the port."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(MOSQUITTO_CONF.format(port=port))
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait(lambda: _port_open(port), 10, "mosquitto did not start")
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


def _wait(done: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(what)
        time.sleep(0.01)
    return time.monotonic() - t0


def _settle(count: Callable[[], int], want: int, quiet_s: float = 5.0) -> float:
    """Seconds until `count()` reaches `want`, or stops growing for `quiet_s` (a broker may drop messages)."""
    t0 = last_change = time.monotonic()
    last = -1
    while (n := count()) < want:
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            return last_change - t0
        time.sleep(0.01)
    return time.monotonic() - t0


def run(host: str, port: int, devices: int, wave_size: int, wave_interval_s: float, timeout: float = 300.0) -> dict[str, float]:
    """Connect `devices` devices, publish one round, and return the timings in seconds."""
    prefix = "bench-" + uuid.uuid4().hex[:6]
    seen: set[str] = set()
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        device_id = msg.topic.split("/")[3]
        if device_id.startswith(prefix):
            with lock:
                seen.add(device_id)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=prefix + "-sub")
    sub.on_message = on_message
    sub.connect(host, port)
    sub.subscribe("replenish/v1/devices/+/telemetry", qos=1)
    sub.loop_start()
    kinds = list(KINDS)
    fleet = Fleet(
        host, port, [FleetDevice(f"{prefix}-{i:05d}", kind=kinds[i % len(kinds)]) for i in range(devices)],
        SimClock(1.0, datetime.now(UTC)), interval_hours=24.0, quirks=Quirks.none(), wave_size=wave_size, wave_interval_s=wave_interval_s,
    )
    cpu0 = time.process_time()
    t0 = time.monotonic()
    fleet.start()
    try:
        connect_s = _wait(lambda: fleet.connected == devices, timeout, "devices did not all connect")
        births_s = _wait(lambda: fleet.stats["acked"] >= 2 * devices, timeout, "births not all acknowledged") + connect_s
        fleet.publish_round()
        acked_s = _wait(lambda: fleet.stats["acked"] >= 3 * devices, timeout, "telemetry not all acknowledged")
        received_s = _settle(lambda: len(seen), devices) + acked_s
        cpu = time.process_time() - cpu0
        total = time.monotonic() - t0
    finally:
        fleet.stop()
        sub.loop_stop()
        sub.disconnect()
    return {
        "devices": devices, "connect_s": connect_s, "birth_status_acked_s": births_s, "round_acked_s": acked_s,
        "round_received_s": received_s, "received": len(seen), "total_s": total, "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: start a private Mosquitto on a free port")
    ap.add_argument("--wave-size", type=int, default=250)
    ap.add_argument("--wave-interval", type=float, default=0.05, help="seconds between waves")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.devices + 1000)), hard))
    if args.port:
        result = run(args.host, args.port, args.devices, args.wave_size, args.wave_interval)
    else:
        with mosquitto() as port:
            result = run("127.0.0.1", port, args.devices, args.wave_size, args.wave_interval)
    for key, value in result.items():
        print(f"{key:>22}: {value:,.2f}" if isinstance(value, float) else f"{key:>22}: {value:,}")
    print(json.dumps({"bench": "fleet", **result}))  # every bench ends with its figures as one JSON object


if __name__ == "__main__":
    main()
