"""The catalog's rules: which product fits which slot, lead-time quantiles, order-up-to in whole packs, substitutes; pure.

No I/O and no clock: products and slots come in as plain values (`Product` rows are read, not
written). The ordering policy may call `order_up_to_packs` and `LeadTime.of` with what it loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MAX_LEAD_DAYS", "UNITS", "Fits", "LeadTime", "fits", "order_up_to_packs", "substitute_problems", "suggest_substitutes"]

UNITS = ("percent", "ml", "g", "count")  # the units a slot may have (docs/protocol.md, birth)
# A household consumable that takes more than two months to arrive is no offer to plan around;
# USAGE_FIGURES §8: order to delivery is 0-7 days for 95 % of North American orders, rarely 7-14 days.
MAX_LEAD_DAYS = 60.0
_EPS = 1e-9  # levels are floats: a gap of 1e-12 packs is no gap


class Fits(Protocol):
    """What `fits` reads of a product (`storage.Product` has it)."""

    @property
    def consumable(self) -> str: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def slots(self) -> list[str]: ...
    @property
    def unit(self) -> str | None: ...


def fits(product: Fits, model: str, slot_id: str, consumable: str, unit: str | None = None) -> bool:
    """Whether `product` fits slot `slot_id` (holding `consumable`, in `unit`) of a device of `model`.

    Model AND slot AND consumable; and the unit, when both know it (a pack in ml is no pack for a slot weighed in g).
    """
    if product.unit and unit and product.unit != unit:
        return False
    return product.consumable == consumable and model in product.models and (not product.slots or slot_id in product.slots)


@dataclass(frozen=True, slots=True)
class LeadTime:
    """Days from release to delivery, as the 10/50/90 % quantiles of their distribution."""

    p10: float
    p50: float
    p90: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.p10 <= self.p50 <= self.p90 <= MAX_LEAD_DAYS:
            raise ValueError(f"lead-time quantiles must satisfy 0 <= p10 <= p50 <= p90 <= {MAX_LEAD_DAYS:g} days, not {self.p10:g}/{self.p50:g}/{self.p90:g}")

    @classmethod
    def of(cls, p10: float | None, p50: float | None, p90: float | None, default_days: float) -> LeadTime:
        """A product's quantiles; a product without them takes its fulfilment system's single figure for all three."""
        if p10 is None or p50 is None or p90 is None:
            return cls(default_days, default_days, default_days)
        return cls(p10, p50, p90)


def order_up_to_packs(level: float, target: float, pack_size: float) -> int:
    """Whole packs that bring a slot from `level` (forecast at delivery) to at least `target`, all in the slot's unit.

    Zero when the slot is at or above its target. Rounding up, not to the nearest pack: a slot
    ordered for must not arrive short of its target (a cartridge at 5 % with a 100 % pack: one).
    A negative forecast level (the slot would be empty before delivery) counts as empty.
    """
    if not pack_size > 0:
        raise ValueError(f"pack size must be above 0, not {pack_size}")
    if not (math.isfinite(level) and math.isfinite(target)):
        raise ValueError("level and target must be finite numbers")
    gap = target - max(level, 0.0)
    if gap <= _EPS * max(1.0, abs(target)):
        return 0
    return math.ceil(gap / pack_size - _EPS)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A product as the substitute ranking sees it."""

    sku: str
    unit_price_cents: int
    currency: str
    pack_size: float | None
    lead_p50_days: float


def suggest_substitutes(chosen: str, candidates: Sequence[Candidate], currency: str, limit: int = 3) -> list[str]:
    """Up to `limit` compatible products other than `chosen`, cheapest per slot unit first, then the faster, then by SKU.

    Only products in `currency` (a household pays in one); those without a pack size come last.
    """
    usable = [c for c in candidates if c.sku != chosen and c.currency == currency]

    def key(c: Candidate) -> tuple[bool, float, float, str]:
        per_unit = c.unit_price_cents / c.pack_size if c.pack_size else math.inf
        return (c.pack_size is None, per_unit, c.lead_p50_days, c.sku)

    return [c.sku for c in sorted(usable, key=key)][:limit]


def substitute_problems(chosen: str, substitutes: Sequence[str], compatible: set[str], max_count: int) -> list[str]:
    """What is wrong with a household's ranked substitutes for a slot (empty when nothing): each once, not the chosen one, each compatible."""
    problems: list[str] = []
    if len(substitutes) > max_count:
        problems.append(f"at most {max_count} substitutes")
    seen: set[str] = set()
    for sku in substitutes:
        if sku == chosen:
            problems.append(f"{sku!r} is the chosen product, not a substitute")
        elif sku in seen:
            problems.append(f"{sku!r} is listed twice")
        elif sku not in compatible:
            problems.append(f"{sku!r} does not fit this slot")
        seen.add(sku)
    return problems
