"""Stock-outs of the slots households set up: a line in the log when one begins and when it ends (SPEC 2: it never runs out).

The promise is checkable by anyone running the product: `replenish demo` (and every serving
process) logs `stock-out began` when a slot a household set up reports empty, and `stock-out ended`
with how long it lasted once the slot reports a level again. The rule of which slots are out is
pure (`stock_out_changes`); `StockOuts` reads the slots' last levels at each tick and remembers,
in memory, which were out at the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway import GatewayStorage

from ..storage import SlotSetting

__all__ = ["StockOutChanges", "StockOuts", "stock_out_changes"]

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (device id, slot id)
STOCK_OUTS = Counter("replenish_stockouts_total", "Stock-outs begun: a slot a household set up reported empty")
EMPTY = 1e-9  # a level at or below this is empty (a receptacle's level is its headroom: 0 is full)


@dataclass(frozen=True, slots=True)
class StockOutChanges:
    """Which slots ran out since the last look, and which are no longer out (and since when they were)."""

    began: tuple[Key, ...]
    ended: tuple[tuple[Key, datetime], ...]
    out: Mapping[Key, datetime]  # every slot out now, and since when


def stock_out_changes(out: Mapping[Key, datetime], levels: Mapping[Key, float | None], now: datetime) -> StockOutChanges:
    """Compare the slots out before (`out`, since when) with their last levels now; a slot without a level keeps its state."""
    still: dict[Key, datetime] = {}
    began: list[Key] = []
    ended: list[tuple[Key, datetime]] = []
    for key, level in sorted(levels.items()):
        if level is None:
            if key in out:
                still[key] = out[key]
        elif level <= EMPTY:
            still[key] = out.get(key, now)
            if key not in out:
                began.append(key)
        elif key in out:
            ended.append((key, out[key]))
    ended += [(key, since) for key, since in sorted(out.items()) if key not in levels]  # the slot is no longer set up
    return StockOutChanges(tuple(began), tuple(ended), still)


class StockOuts:
    """Watches the slots households set up, and logs each stock-out as it begins and ends."""

    def __init__(self, engine: Engine, gateway: GatewayStorage) -> None:
        self.engine = engine
        self.gateway = gateway
        self.out: Mapping[Key, datetime] = {}

    def check(self, now: datetime) -> StockOutChanges:
        """One look at every set-up slot's last level."""
        with Session(self.engine) as s:
            chosen = {(x.device_id, x.slot_id) for x in s.exec(select(SlotSetting))}
        slots = self.gateway.registry.slots(sorted({d for d, _ in chosen}))
        levels = {(sl.device_id, sl.slot_id): sl.level for sl in slots if (sl.device_id, sl.slot_id) in chosen}
        changes = stock_out_changes(self.out, levels, now)
        for device_id, slot_id in changes.began:
            STOCK_OUTS.inc()
            log.warning("stock-out began: %s/%s reports empty at %s", device_id, slot_id, now.isoformat())
        for (device_id, slot_id), since in changes.ended:
            hours = (now - since).total_seconds() / 3600
            log.warning("stock-out ended: %s/%s after %.1f hours (empty since %s)", device_id, slot_id, hours, since.isoformat())
        self.out = changes.out
        return changes
