"""Simulated household devices: pure seeded models, and a fleet that runs them over MQTT.

It imports nothing of the product's (`gateway`, `replenish`): devices know only the protocol.

Pure models (no broker, no clock; for tests and the forecast benchmark)::

    from datetime import UTC, datetime, timedelta
    from firmware_sim import KINDS, Quirks, make_device

    dev = make_device("printer.inkjet", "prn-1", seed=7, start=datetime(2026, 1, 1, tzinfo=UTC))
    msgs = dev.advance(datetime(2026, 2, 1, tzinfo=UTC))   # list[Message], in publishing order
    msgs[0].suffix, msgs[0].payload, msgs[0].at, msgs[0].retain, msgs[0].will
    truth = dev.truth()   # Truth: levels, used, unmet, empty_at, refills, away, offline, reboots...
    dev.on_orders(orders_payload, now)   # installs delivered units; returns the messages it sends

- `make_device(kind, device_id, seed, start, *, quirks=None, interval=timedelta(hours=1),
  household=None, start_levels=None, record=False, params=None) -> SimDevice`; kinds are the
  keys of `KINDS`: printer.inkjet, printer.laser, fridge, coffee, water_filter, dishwasher.
- `SimDevice.advance(now) -> list[Message]`: simulate up to `now` (a datetime or epoch seconds).
  A `Message` with `will=True` is the last will the broker would publish when the device drops.
- `SimDevice.truth() -> Truth`: the ground truth; `SimDevice.levels` / `.names` are the raw
  true levels for hot loops. `record=True` keeps the true levels at every report (`history`).
- `Quirks` sets how messy devices are (`Quirks.none()`: clean); `make_household` and `Household`
  let devices share one household (size, time zone, trips); `away_periods` lists its trips.

Over MQTT: `Fleet(host, port, [FleetDevice(...)], SimClock(speed), interval_hours, seed,
credentials=load_credentials(path), quirks=Quirks(...), namespace="")`, then `start()` / `stop()`; one thread
drives every device (`ClientLoop`). `python -m firmware_sim.bench` measures 10,000 devices.
"""

from ._clock import SimClock
from ._device import SimDevice
from ._fleet import Fleet, FleetDevice, load_credentials, topic_root
from ._kinds import Kind, SlotDef
from ._loop import ClientLoop
from ._printer import InkjetPrinter, PrinterProfile
from ._registry import KINDS, make_device
from ._truth import Message, Quirks, Refill, Truth
from ._usage import Household, away_periods, make_household

__all__ = [
    "KINDS",
    "ClientLoop",
    "Fleet",
    "FleetDevice",
    "Household",
    "InkjetPrinter",
    "Kind",
    "Message",
    "PrinterProfile",
    "Quirks",
    "Refill",
    "SimClock",
    "SimDevice",
    "SlotDef",
    "Truth",
    "away_periods",
    "load_credentials",
    "make_device",
    "make_household",
    "topic_root",
]
