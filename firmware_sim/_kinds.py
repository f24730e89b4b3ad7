"""What a device kind is to the simulator: its slots, its rhythm, one session of use, and how it reports.

A kind is stateless; per-device parameters (drawn once from the device's seed) live in a dict the
kind returns from `params`. Concrete kinds live in `_printers.py` and `_kitchen.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from ._usage import Household, Rhythm

__all__ = ["Kind", "Reading", "Session", "SlotDef", "step"]

Reading = float | int | str | None  # a reported level: a number in the slot's unit, or a sentinel


@dataclass(frozen=True, slots=True)
class SlotDef:
    """One consumable slot as announced in the birth message."""

    slot: str
    consumable: str
    unit: str  # percent, ml, g or count
    capacity: float
    fills_up: bool = False  # a receptacle (waste toner): the level rises with use

    def birth(self) -> dict[str, Any]:
        """This slot as a birth-message entry."""
        doc: dict[str, Any] = {"slot": self.slot, "consumable": self.consumable, "unit": self.unit, "capacity": self.capacity}
        if self.fills_up:
            doc["fills_up"] = True
        return doc


@dataclass(frozen=True, slots=True)
class Session:
    """One use: how much each slot changes (consumed, or filled for a receptacle) and the activity (pages, cups...)."""

    amounts: tuple[float, ...]
    activity: float


class Kind:
    """A device kind; subclasses set the class constants and override `params`, `session` and `report`."""

    kind: ClassVar[str]
    model: ClassVar[str]
    activity: ClassVar[str]  # what `Session.activity` counts: pages, cups, grams, litres, cycles
    rhythm: ClassVar[Rhythm]
    # A household out of stock buys elsewhere after this many days (uniform), and says so with this probability.
    elsewhere_days: ClassVar[tuple[float, float]] = (0.5, 3.0)
    p_elsewhere_event: ClassVar[float] = 0.5
    # Shopping trips that restock a slot below `restock_below` of capacity (0 trips: none; the fridge has them).
    restock_per_week: ClassVar[float] = 0.0
    restock_below: ClassVar[float] = 0.5
    noisy: ClassVar[bool] = False  # True: every report draws fresh noise (else a report changes only with the level)

    def slots(self, params: dict[str, Any]) -> tuple[SlotDef, ...]:
        """The device's slots (capacities may depend on its parameters)."""
        raise NotImplementedError

    def params(self, rng: random.Random, household: Household) -> dict[str, Any]:
        """Per-device parameters drawn once; must hold `sessions_per_day`, the mean on an ordinary day at home."""
        raise NotImplementedError

    def session(self, rng: random.Random, params: dict[str, Any], idle_s: float) -> Session:
        """One session of use; `idle_s` is the time since the previous one."""
        raise NotImplementedError

    def report(self, index: int, level: float, rng: random.Random, params: dict[str, Any]) -> Reading:
        """What the device says about slot `index` whose true level is `level` (quantised, noisy, or a sentinel)."""
        raise NotImplementedError

    def exact(self, index: int, level: float, params: dict[str, Any]) -> Reading:
        """An unquantised, noiseless report (the demo's lively printers, and `quantise=False`)."""
        return round(level, 1)


def step(level: float, quantum: int) -> int:
    """`level` rounded to the nearest multiple of `quantum`."""
    return round(level / quantum) * quantum
