"""The device kinds by birth name, and `make_device`, the one way to build a simulated device."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ._device import SimDevice
from ._kinds import Kind
from ._kitchen import Coffee, Dishwasher, Fridge, WaterFilter
from ._printers import Inkjet, Laser
from ._truth import Quirks
from ._usage import Household

__all__ = ["KINDS", "make_device"]

KINDS: dict[str, Kind] = {k.kind: k for k in (Inkjet(), Laser(), Fridge(), Coffee(), WaterFilter(), Dishwasher())}


def make_device(
    kind: str,
    device_id: str,
    seed: int | str,
    start: datetime,
    *,
    quirks: Quirks | None = None,
    interval: timedelta = timedelta(hours=1),
    household: Household | None = None,
    start_levels: dict[str, float] | None = None,
    record: bool = False,
    params: dict[str, Any] | None = None,
) -> SimDevice:
    """A seeded device of `kind` (a key of `KINDS`) starting at `start`; the same arguments give the same device.

    `params` overrides the kind's per-device parameters (e.g. `sessions_per_day`); `record` keeps
    the true levels at every report for `truth().history`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown device kind {kind!r}; known: {', '.join(KINDS)}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    return SimDevice(
        KINDS[kind], device_id, seed, start, quirks=quirks or Quirks(), interval_s=interval.total_seconds(),
        household=household, start_levels=start_levels, record=record, params=params,
    )
