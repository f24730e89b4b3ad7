"""The catalog's pure rules with known answers: order-up-to in whole packs, fits, lead times, money, substitutes."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from replenish.catalog import LeadTime, fits, order_up_to_packs, suggest_substitutes, to_minor
from replenish.money import CURRENCIES, minor_digits, to_major
from replenish.catalog.packs import Candidate, substitute_problems


@pytest.mark.parametrize(
    ("level", "target", "pack", "packs"),
    [
        (5.0, 100.0, 100.0, 1),  # a cartridge at 5 %: one cartridge
        (0.0, 100.0, 100.0, 1),
        (99.0, 100.0, 100.0, 1),  # below target at all: a whole pack
        (100.0, 100.0, 100.0, 0),  # at target: nothing
        (120.0, 100.0, 100.0, 0),  # above (a receptacle reads the other way; the caller passes headroom)
        (300.0, 2060.0, 1030.0, 2),  # milk: 1,760 g short with 1 L cartons (1,030 g): two
        (1030.0, 2060.0, 1030.0, 1),  # exactly one pack short: one, not two
        (-50.0, 250.0, 250.0, 1),  # forecast below empty counts as empty
        (12.0, 40.0, 40.0, 1),  # tablets: a 40-pack for 28 missing
        (0.0, 1500.0, 1500.0, 1),  # salt: one 1.5 kg pack fills the reservoir
        (20.0, 150.0, 500.0, 1),  # rinse aid: a 500 ml bottle tops up a 150 ml reservoir
        (0.0, 1000.0, 340.0, 3),  # US 12 oz bags to a 1 kg target: 1,020 g
        (0.1 + 0.2, 0.3 + 100.0, 100.0, 1),  # float noise is no extra pack
    ],
)
def test_order_up_to_packs_rounds_up_to_whole_packs(level: float, target: float, pack: float, packs: int) -> None:
    assert order_up_to_packs(level, target, pack) == packs


def test_order_up_to_refuses_a_pack_of_nothing_and_non_numbers() -> None:
    with pytest.raises(ValueError, match="pack size"):
        order_up_to_packs(0.0, 100.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        order_up_to_packs(float("nan"), 100.0, 100.0)


@dataclass
class P:
    consumable: str
    models: list[str]
    slots: list[str] = field(default_factory=list)
    unit: str | None = None


def test_a_product_fits_by_model_and_slot_and_consumable_and_unit() -> None:
    black = P("ink.black", ["hp-67", "hp-67e"], ["black"], "percent")
    assert fits(black, "hp-67", "black", "ink.black", "percent")
    assert fits(black, "hp-67e", "black", "ink.black")
    assert not fits(black, "hp-305", "black", "ink.black")  # another model
    assert not fits(black, "hp-67", "photo-black", "ink.black")  # another slot of the same consumable
    assert not fits(black, "hp-67", "black", "ink.cyan")
    assert not fits(P("milk", ["fridge"], [], "ml"), "fridge", "milk", "milk", "g")  # ml packs for a slot in grams
    assert fits(P("milk", ["fridge"]), "fridge", "any-shelf", "milk", "g")  # no slots listed: any slot of its consumable


def test_lead_time_quantiles_are_ordered_and_bounded_and_default_to_the_fulfiller() -> None:
    assert LeadTime(1, 2, 3.5) == LeadTime(1.0, 2.0, 3.5)
    assert LeadTime(0, 0, 0).p90 == 0
    for bad in ((2, 1, 3), (1, 3, 2), (-1, 1, 2), (1, 2, 61)):
        with pytest.raises(ValueError, match="p10 <= p50 <= p90"):
            LeadTime(*bad)
    assert LeadTime.of(None, None, None, 4.0) == LeadTime(4.0, 4.0, 4.0)
    assert LeadTime.of(1.0, None, 3.0, 4.0) == LeadTime(4.0, 4.0, 4.0)
    assert LeadTime.of(1.0, 2.0, 3.0, 4.0) == LeadTime(1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("price", "currency", "minor"),
    [("29.99", "EUR", 2999), ("29.9", "EUR", 2990), ("30", "EUR", 3000), ("1200", "JPY", 1200), ("1.250", "KWD", 1250), ("0", "USD", 0), ("21474836.47", "EUR", 2**31 - 1)],
)
def test_prices_become_minor_units_of_their_currency(price: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(price), currency) == minor


@pytest.mark.parametrize(
    ("price", "currency", "message"),
    [("9.999", "EUR", "more decimals than EUR's 2"), ("9.5", "JPY", "more decimals than JPY's 0"), ("1", "EURO", "no ISO 4217"), ("1", "XTS", "no ISO 4217"), ("21474836.48", "EUR", "out of range")],
)
def test_a_price_the_currency_cannot_hold_is_refused(price: str, currency: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_minor(Decimal(price), currency)


def test_the_currency_table_knows_the_exceptions_to_two_digits() -> None:
    assert (minor_digits("EUR"), minor_digits("JPY"), minor_digits("BHD"), minor_digits("CLF"), minor_digits("ABC")) == (2, 0, 3, 4, None)
    assert all(len(c) == 3 and c.isupper() for c in CURRENCIES) and len(CURRENCIES) > 150


def test_substitutes_are_suggested_cheapest_per_unit_in_the_households_currency() -> None:
    candidates = [
        Candidate("HP67XL-BL", 2999, "EUR", 100.0, 2.0),  # the chosen one
        Candidate("HP67-BL", 1699, "EUR", 100.0, 2.0),
        Candidate("RM67XL-BL", 1499, "EUR", 100.0, 4.0),
        Candidate("TWIN", 2998, "EUR", 200.0, 1.0),  # as cheap per unit as RM, but faster
        Candidate("US-BL", 999, "USD", 100.0, 3.0),  # another currency
        Candidate("NOPACK", 100, "EUR", None, 1.0),  # unknown pack size: last
    ]
    assert suggest_substitutes("HP67XL-BL", candidates, "EUR", limit=10) == ["TWIN", "RM67XL-BL", "HP67-BL", "NOPACK"]
    assert suggest_substitutes("HP67XL-BL", candidates, "EUR", limit=2) == ["TWIN", "RM67XL-BL"]
    assert suggest_substitutes("HP67XL-BL", candidates, "GBP") == []


def test_a_households_substitutes_are_each_once_compatible_and_not_the_chosen_one() -> None:
    compatible = {"A", "B", "C"}
    assert substitute_problems("A", ["B", "C"], compatible, 5) == []
    assert substitute_problems("A", ["A", "B", "B", "Z"], compatible, 5) == [
        "'A' is the chosen product, not a substitute",
        "'B' is listed twice",
        "'Z' does not fit this slot",
    ]
    assert substitute_problems("A", ["B", "C"], compatible, 1) == ["at most 1 substitutes"]


def test_an_amount_of_minor_units_is_written_back_in_its_currency() -> None:
    assert [f"{to_major(2499, c):f}" for c in ("EUR", "JPY", "KWD")] == ["24.99", "2499", "2.499"]

