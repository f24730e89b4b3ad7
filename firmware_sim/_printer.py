"""The first simulated printer, kept for its callers: `PrinterProfile` (used by `FleetDevice`) and `InkjetPrinter`.

New code uses `make_device("printer.inkjet", ...)` (`_printers.Inkjet`), which models the same
printer with rhythms, quantisation and quirks.

Usage: Consumer Reports' average home user prints 25-35 pages a month, in batches of 2-3 pages
(USAGE_FIGURES 1b); a home office prints far more. An HP 67XL black yields about 240 pages and a
colour cartridge about 120 at ISO coverage (1a); most home pages are mostly black (43 %, 1b).
Cartridges report in 1 % steps here.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["InkjetPrinter", "PrinterProfile"]

log = logging.getLogger(__name__)

SLOTS = ("black", "cyan", "magenta", "yellow")
YIELD_PAGES = {"black": 240.0, "cyan": 330.0, "magenta": 330.0, "yellow": 330.0}  # HP 67XL-class
COLOUR_SHARE = 0.35  # just over a third of home users print mostly colour (USAGE_FIGURES 1b)


@dataclass(frozen=True, slots=True)
class PrinterProfile:
    """How a household prints."""

    pages_per_day: float = 1.0  # ~30 pages a month: the average home user
    pages_per_batch: float = 2.5


@dataclass
class InkjetPrinter:
    """State and behaviour of one printer; `step` advances it and returns messages to publish."""

    device_id: str
    profile: PrinterProfile
    rng: random.Random
    levels: dict[str, float] = field(default_factory=lambda: {s: 100.0 for s in SLOTS})
    seq: int = 0
    model: str = "hp-67"

    def birth(self) -> dict[str, Any]:
        """The retained birth message."""
        return {
            "v": 1,
            "device": self.device_id,
            "model": self.model,
            "kind": "printer.inkjet",
            "firmware": "sim-1.0",
            "slots": [{"slot": s, "consumable": f"ink.{s}", "unit": "percent", "capacity": 100} for s in SLOTS],
        }

    def use(self, hours: float) -> None:
        """Print what the household prints in `hours`: Poisson batches of pages."""
        batches = _poisson(self.rng, self.profile.pages_per_day / self.profile.pages_per_batch * hours / 24)
        for _ in range(batches):
            pages = max(1, round(self.rng.expovariate(1 / self.profile.pages_per_batch)))
            colour = self.rng.random() < COLOUR_SHARE
            for slot in SLOTS:
                if slot == "black" or colour:
                    self.levels[slot] = max(self.levels[slot] - 100.0 * pages / YIELD_PAGES[slot], 0.0)

    def telemetry(self, now: datetime, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A telemetry message with the current levels."""
        self.seq += 1
        return {"v": 1, "device": self.device_id, "seq": self.seq, "ts": now.isoformat(), "levels": {s: round(v) for s, v in self.levels.items()}, "events": events or []}

    def on_orders(self, payload: bytes, seen: set[str]) -> list[dict[str, Any]]:
        """React to the gateway's orders message: install every newly delivered cartridge."""
        events = []
        try:
            slots = json.loads(payload).get("slots")
        except (ValueError, AttributeError):
            return events
        if not isinstance(slots, dict):
            return events
        for slot, info in slots.items():
            if slot in self.levels and isinstance(info, dict) and info.get("status") == "delivered" and info.get("order_id") not in seen:
                seen.add(info["order_id"])
                self.levels[slot] = 100.0
                events.append({"type": "replaced", "slot": slot, "level": 100})
                log.info("%s: installed the delivered %s cartridge", self.device_id, slot)
        return events


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count
