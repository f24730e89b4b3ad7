"""A product file's rows checked one by one: every column of docs/catalog.md, each bad value named; pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..rowfiles import IDENT, IDENT_RULE, Row, RowError, check_rows, real, text, words
from ..money import minor_digits, to_minor
from .packs import MAX_LEAD_DAYS, UNITS, LeadTime

__all__ = ["PRODUCT_COLUMNS", "ProductRow", "check_products"]

PRODUCT_COLUMNS = (
    "sku", "name", "consumable", "models", "slots", "unit", "pack_size", "price", "currency", "fulfiller_id",
    "lead_p10_days", "lead_p50_days", "lead_p90_days",
)  # fmt: skip
SKU = IDENT
# Models, slots and consumables as a birth message may name them (docs/protocol.md); ';' separates list items.
_PLAIN = re.compile(r"[^;\x00-\x1f]+")
MAX_PACK = 1_000_000.0  # a 1,000 kg pack in grams is a typo, not a product


@dataclass(frozen=True, slots=True)
class ProductRow:
    """A product row that passed every check, ready to upsert by SKU."""

    row: int
    sku: str
    name: str
    consumable: str
    models: tuple[str, ...]
    slots: tuple[str, ...]
    unit: str
    pack_size: float
    unit_price_cents: int
    currency: str
    fulfiller_id: str
    lead_time: LeadTime | None


def check_products(rows: Sequence[Row]) -> tuple[list[ProductRow], list[RowError]]:
    """The good rows and every error of the bad ones; a SKU seen twice is an error on its second row."""
    return check_rows(rows, PRODUCT_COLUMNS, _check, "sku", lambda p: p.sku)


def _check(row: Row, errors: list[RowError]) -> ProductRow | None:
    n = row.number
    sku = text(row, "sku", errors, 64, SKU, IDENT_RULE)
    name = text(row, "name", errors, 200)
    consumable = text(row, "consumable", errors, 64, _PLAIN, "no ';' and no control characters")
    models = words(row, "models", errors, lambda m: _plain(m, "model", 128))
    slots = words(row, "slots", errors, lambda s: _plain(s, "slot id", 32), required=False)
    unit = text(row, "unit", errors, 16)
    if unit is not None and unit not in UNITS:
        errors.append(RowError(n, "unit", f"must be one of {', '.join(UNITS)}, not {unit!r}"))
        unit = None
    pack = real(row, "pack_size", errors, 0, MAX_PACK, above=True)
    if pack is not None and unit == "count" and pack != pack.to_integral_value():
        errors.append(RowError(n, "pack_size", f"{pack} must be a whole number of items for unit count"))
    currency = text(row, "currency", errors, 8)
    if currency is not None and minor_digits(currency) is None:
        errors.append(RowError(n, "currency", f"{currency!r} is no ISO 4217 currency code (e.g. EUR, USD, GBP, JPY)"))
        currency = None
    price = real(row, "price", errors, 0, 10**12)
    cents = None
    if currency is not None and price is not None:
        try:
            cents = to_minor(price, currency)
        except ValueError as exc:
            errors.append(RowError(n, "price", str(exc)))
    fulfiller = text(row, "fulfiller_id", errors, 64, IDENT, IDENT_RULE)
    lead_time = _lead_time(row, errors)
    if errors or None in (sku, name, consumable, models, slots, unit, pack, cents, currency, fulfiller):
        return None
    assert sku and name and consumable and models is not None and slots is not None and unit and pack and currency and fulfiller and cents is not None
    return ProductRow(n, sku, name, consumable, tuple(models), tuple(slots), unit, float(pack), cents, currency, fulfiller, lead_time)


def _plain(item: str, what: str, max_len: int) -> str | None:
    """What is wrong with a list item naming a model or slot, if anything."""
    if not 1 <= len(item) <= max_len:
        return f"a {what} has 1 to {max_len} characters: {item!r}"
    return None if _PLAIN.fullmatch(item) and item == item.strip() else f"{item!r} is no {what}"


def _lead_time(row: Row, errors: list[RowError]) -> LeadTime | None:
    """All three quantiles, or none (the fulfilment system's lead time)."""
    names = ("lead_p10_days", "lead_p50_days", "lead_p90_days")
    before = len(errors)
    values = [real(row, q, errors, 0, MAX_LEAD_DAYS, required=False) for q in names]
    if len(errors) > before:
        return None
    given = [v for v in values if v is not None]
    if not given:
        return None
    if len(given) < 3:
        missing = [q for q, v in zip(names, values, strict=True) if v is None]
        errors.append(RowError(row.number, missing[0], "give all three lead-time quantiles, or none"))
        return None
    p10, p50, p90 = (float(v) for v in given)
    if not p10 <= p50 <= p90:
        field = "lead_p50_days" if p10 > p50 else "lead_p90_days"
        errors.append(RowError(row.number, field, f"quantiles must not decrease: p10 {p10:g} <= p50 {p50:g} <= p90 {p90:g} days"))
        return None
    return LeadTime(p10, p50, p90)
