"""Catalog and fulfiller files read row by row: every column checked, each bad value named with its row and field."""

from __future__ import annotations

from typing import Any

import pytest

from replenish.catalog import PRODUCT_COLUMNS, LeadTime, check_products
from replenish.fulfilment import FULFILLER_COLUMNS, check_fulfillers
from replenish.rowfiles import FileError, Row, format_of, read_rows

GOOD = {
    "sku": "MILK-1L", "name": "Whole milk 1 L", "consumable": "milk", "models": "fridge-scale-1", "slots": "milk", "unit": "g",
    "pack_size": "1030", "price": "1.19", "currency": "EUR", "fulfiller_id": "shop", "lead_p10_days": "0.5", "lead_p50_days": "1", "lead_p90_days": "2",
}  # fmt: skip


def _errors(**changes: Any) -> list[tuple[str, str]]:
    fields = {k: v for k, v in (GOOD | changes).items() if v is not None}
    good, errors = check_products([Row(7, fields)])
    assert all(e.row == 7 for e in errors)
    assert bool(good) != bool(errors)
    return [(e.field, e.reason) for e in errors]


def test_a_good_row_becomes_a_product_with_minor_units_and_quantiles() -> None:
    (p,), errors = check_products([Row(2, GOOD)])
    assert errors == []
    assert (p.sku, p.models, p.slots, p.unit, p.pack_size, p.unit_price_cents, p.currency) == ("MILK-1L", ("fridge-scale-1",), ("milk",), "g", 1030.0, 119, "EUR")
    assert p.lead_time == LeadTime(0.5, 1.0, 2.0)


def test_optional_columns_may_be_left_empty() -> None:
    (p,), _ = check_products([Row(2, GOOD | {"slots": "", "lead_p10_days": "", "lead_p50_days": "", "lead_p90_days": ""})])
    assert (p.slots, p.lead_time) == ((), None)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"sku": "MILK 1L"}, "sku", "is not valid"),
        ({"sku": ""}, "sku", "is required"),
        ({"name": "x" * 201}, "name", "longer than 200"),
        ({"consumable": "a;b"}, "consumable", "is not valid"),
        ({"models": ""}, "models", "at least one"),
        ({"models": "m" * 129}, "models", "1 to 128 characters"),
        ({"slots": "s" * 33}, "slots", "1 to 32 characters"),
        ({"unit": "litre"}, "unit", "percent, ml, g, count"),
        ({"pack_size": "0"}, "pack_size", "must be above 0"),
        ({"pack_size": "-1"}, "pack_size", "out of range"),
        ({"pack_size": "2000000"}, "pack_size", "at most 1000000"),
        ({"pack_size": "lots"}, "pack_size", "must be a number"),
        ({"pack_size": "nan"}, "pack_size", "must be a number"),
        ({"unit": "count", "pack_size": "1.5"}, "pack_size", "whole number"),
        ({"price": "1.199"}, "price", "more decimals than EUR's 2"),
        ({"price": "-1"}, "price", "out of range"),
        ({"price": "1,19"}, "price", "must be a number"),
        ({"currency": "eur"}, "currency", "ISO 4217"),
        ({"currency": "XAU"}, "currency", "ISO 4217"),
        ({"currency": "JPY", "price": "119.5"}, "price", "JPY's 0"),
        ({"fulfiller_id": "shop/eu"}, "fulfiller_id", "is not valid"),
        ({"lead_p90_days": None}, "lead_p90_days", "all three"),
        ({"lead_p10_days": "3"}, "lead_p50_days", "must not decrease"),
        ({"lead_p90_days": "0.9"}, "lead_p90_days", "must not decrease"),
        ({"lead_p90_days": "61"}, "lead_p90_days", "at most 60"),
        ({"lead_p10_days": "-0.5"}, "lead_p10_days", "at least 0"),
    ],
)
def test_each_bad_value_is_named_with_its_field(changes: dict[str, Any], field: str, reason: str) -> None:
    errors = _errors(**changes)
    assert [f for f, _ in errors] == [field], errors
    assert reason in errors[0][1]


def test_every_bad_value_of_a_row_is_reported_not_only_the_first() -> None:
    assert {f for f, _ in _errors(sku="", unit="l", price="x", currency="EURO")} == {"sku", "unit", "price", "currency"}


def test_a_sku_twice_in_one_file_is_an_error_on_its_second_row() -> None:
    good, errors = check_products([Row(2, GOOD), Row(3, GOOD | {"name": "again"})])
    assert [p.row for p in good] == [2]
    assert [str(e) for e in errors] == ["row 3, sku: 'MILK-1L' is on row 2 already"]


def test_csv_rows_carry_their_line_numbers_and_lists_split_on_semicolons() -> None:
    text = "sku,name,consumable,models,unit,pack_size,price,currency,fulfiller_id\n" "A,Ink,ink.black,hp-67;hp-67e,percent,100,9.99,EUR,shop\n" "\n" "B,Ink,ink.black,hp-67,percent,100,oops,EUR,shop\n"
    rows = read_rows(text, "csv", PRODUCT_COLUMNS)
    assert [r.number for r in rows] == [2, 4]  # the blank line is skipped, not renumbered
    good, errors = check_products(rows)
    assert good[0].models == ("hp-67", "hp-67e")
    assert [str(e) for e in errors] == ["row 4, price: must be a number, not 'oops'"]


def test_json_items_may_give_numbers_and_lists_and_name_unknown_keys() -> None:
    text = '[{"sku": "A", "name": "Ink", "consumable": "ink.black", "models": ["hp-67"], "unit": "percent", "pack_size": 100, "price": 9.99,' ' "currency": "EUR", "fulfiller_id": "shop", "colour": "black"}, {"sku": "B"}, 3]'
    rows = read_rows(text, "json", PRODUCT_COLUMNS)
    good, errors = check_products(rows)
    assert good == []
    fields = [(e.row, e.field) for e in errors]
    assert fields[0] == (1, "colour") and (2, "name") in fields and (3, "(row)") in fields
    ok = '[{"sku": "A", "name": "Ink", "consumable": "ink.black", "models": ["hp-67"], "unit": "percent", "pack_size": 100, "price": 9.99, "currency": "EUR", "fulfiller_id": "shop"}]'
    (p,), _ = check_products(read_rows(ok, "json", PRODUCT_COLUMNS))
    assert p.unit_price_cents == 999  # 9.99 as a JSON number is read through its text, not as a binary float


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        ("sku,prcie\nA,1\n", "csv", "row 1: unknown column 'prcie'"),
        ("", "csv", "empty"),
        ("sku,sku\nA,B\n", "csv", "named twice"),
        ("{not json", "json", "not valid JSON"),
        ('{"sku": "A"}', "json", "a list of objects"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_error_and_nothing_else(content: str, fmt: str, message: str) -> None:
    with pytest.raises(FileError, match=message):
        read_rows(content, fmt, PRODUCT_COLUMNS)


def test_the_format_comes_from_the_option_or_the_extension() -> None:
    assert (format_of("a.CSV"), format_of("a.json"), format_of("a.txt", "json"), format_of("upload", "csv")) == ("csv", "json", "json", "csv")
    with pytest.raises(FileError, match="cannot tell the format"):
        format_of("catalog.xlsx")


def test_fulfiller_rows_check_urls_secrets_keys_and_lead_times() -> None:
    base = {"id": "acme", "name": "Acme", "webhook_url": "https://acme.example/hooks"}
    rows = [
        Row(2, base),
        Row(3, base | {"id": "b", "webhook_url": "ftp://x"}),
        Row(4, base | {"id": "c", "webhook_secret": "whsec_short", "api_key": "short"}),
        Row(5, base | {"id": "d", "lead_time_days": "90", "sandbox": "maybe"}),
        Row(6, base | {"id": "e", "webhook_secret": "whsec_" + "A" * 44, "api_key": "k" * 40, "sandbox": "yes", "lead_time_days": "2.5"}),
        Row(7, base),
    ]
    good, errors = check_fulfillers(rows)
    assert [(g.id, g.sandbox, g.lead_time_days) for g in good] == [("acme", None, None), ("e", True, 2.5)]
    assert [(e.row, e.field) for e in errors] == [(3, "webhook_url"), (4, "webhook_secret"), (4, "api_key"), (5, "lead_time_days"), (5, "sandbox"), (7, "id")]
    assert set(FULFILLER_COLUMNS) >= {"id", "name", "webhook_url", "api_key"}
