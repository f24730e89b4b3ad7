"""Operators' CSV and JSON files of records, read row by row: each bad value becomes a `RowError`, never a traceback; pure."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

__all__ = ["FORMATS", "IDENT", "IDENT_RULE", "FileError", "ImportReport", "Row", "RowError", "Rows", "check_rows", "flag", "format_of", "read_rows", "real", "text", "unknown_keys", "whole", "words"]

FORMATS = ("csv", "json")
IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # SKUs and fulfilment systems' ids
IDENT_RULE = "1-64 letters, digits, '.', '_' and '-', starting with a letter or digit"


class FileError(ValueError):
    """The file as a whole cannot be read (not CSV or JSON, no header, an unknown column): nothing is applied."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad value: the row it is on (CSV: the line, header = 1; JSON: the item, first = 1), the field, why."""

    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        """For a JSON answer."""
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Row:
    """One record as read: its row number and its fields (CSV: strings; JSON: whatever the item held)."""

    number: int
    fields: Mapping[str, Any]
    problem: str | None = None  # what makes it no record at all (a JSON item that is no object, surplus CSV values)


Rows = list[Row]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: the keys created and updated, every bad row's errors, and whether anything was applied."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    errors: tuple[RowError, ...]
    applied: bool  # False only under all-or-nothing with a bad row: then nothing changed

    def as_dict(self) -> dict[str, Any]:
        """For a JSON answer."""
        return {"applied": self.applied, "created": list(self.created), "updated": list(self.updated), "errors": [e.as_dict() for e in self.errors]}


def format_of(filename: str, given: str | None = None) -> str:
    """The file's format: `given`, else from its extension."""
    fmt = (given or (filename.rsplit(".", 1)[-1] if "." in filename else "")).lower()
    if fmt not in FORMATS:
        raise FileError(f"cannot tell the format of {filename!r}: name it .csv or .json, or give the format (csv or json)")
    return fmt


def read_rows(content: str, fmt: str, columns: Sequence[str]) -> Rows:
    """The records of a CSV (with a header line) or JSON (a list of objects) file whose fields are among `columns`.

    An unknown CSV column fails the whole file (a misspelt header would silently drop a field in
    every row); an unknown JSON key is that item's own error, reported by the caller through `unknown_keys`.
    """
    if fmt == "csv":
        return _csv_rows(content, columns)
    if fmt == "json":
        return _json_rows(content)
    raise FileError(f"format must be csv or json, not {fmt!r}")


def unknown_keys(row: Row, columns: Sequence[str]) -> list[RowError]:
    """A JSON item's keys that are no column, or what makes the row no record at all."""
    if row.problem is not None:
        return [RowError(row.number, "(row)", row.problem)]
    return [RowError(row.number, k, f"unknown field (known: {', '.join(columns)})") for k in row.fields if k not in columns]


T = TypeVar("T")


def check_rows(rows: Sequence[Row], columns: Sequence[str], check: Callable[[Row, list[RowError]], T | None], key: str, key_of: Callable[[T], str]) -> tuple[list[T], list[RowError]]:
    """Each row through `check`: the good ones, and every error of the bad ones; a `key` seen twice is an error on its second row."""
    good: list[T] = []
    errors: list[RowError] = []
    first_row: dict[str, int] = {}
    for row in rows:
        row_errors = unknown_keys(row, columns)
        checked = check(row, row_errors) if row.problem is None else None
        if checked is not None and key_of(checked) in first_row:
            row_errors.append(RowError(row.number, key, f"{key_of(checked)!r} is on row {first_row[key_of(checked)]} already"))
        if checked is not None and not row_errors:
            first_row[key_of(checked)] = row.number
            good.append(checked)
        errors.extend(row_errors)
    return good, errors


def _csv_rows(content: str, columns: Sequence[str]) -> Rows:
    reader = csv.DictReader(io.StringIO(content.lstrip("\ufeff")), skipinitialspace=True)  # a spreadsheet's BOM
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise FileError("the CSV file is empty: its first line must name the columns")
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise FileError(f"row 1: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} (known: {', '.join(columns)})")
    if len(set(header)) != len(header):
        raise FileError("row 1: a column is named twice")
    reader.fieldnames = header
    rows: Rows = []
    try:
        for record in reader:
            extra = record.pop(None, None)  # type: ignore[call-overload]
            fields = {k: (v or "").strip() for k, v in record.items() if k is not None}
            if extra:
                rows.append(Row(reader.line_num, fields, f"has {len(extra)} more values than the header has columns"))
            elif any(fields.values()):  # a blank line is no record
                rows.append(Row(reader.line_num, fields))
    except csv.Error as exc:
        raise FileError(f"row {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _json_rows(content: str) -> Rows:
    try:
        doc = json.loads(content)
    except json.JSONDecodeError as exc:
        raise FileError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, list):
        raise FileError("the JSON file must be a list of objects, one per record")
    rows: Rows = []
    for i, item in enumerate(doc, start=1):
        rows.append(Row(i, item) if isinstance(item, dict) else Row(i, {}, f"must be an object of fields, not {json.dumps(item)[:40]}"))
    return rows


# Field readers: each returns the value, or appends a RowError and returns None.


def text(row: Row, name: str, errors: list[RowError], max_len: int, pattern: re.Pattern[str] | None = None, rule: str = "", required: bool = True) -> str | None:
    """A string of at most `max_len` characters, matching `pattern` if given (`rule` says what it allows)."""
    value = row.fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append(RowError(row.number, name, "is required"))
        return None
    if not isinstance(value, str):
        errors.append(RowError(row.number, name, f"must be text, not {value!r}"))
        return None
    value = value.strip()
    if len(value) > max_len:
        errors.append(RowError(row.number, name, f"is longer than {max_len} characters"))
        return None
    if pattern is not None and not pattern.fullmatch(value):
        errors.append(RowError(row.number, name, f"{value!r} is not valid: {rule or 'it must match ' + pattern.pattern}"))
        return None
    return value


def real(row: Row, name: str, errors: list[RowError], low: float, high: float, required: bool = True, above: bool = False) -> Decimal | None:
    """A decimal number in [low, high] (in (low, high] when `above`); JSON may give it as a number or a string."""
    value = row.fields.get(name)
    if value is None or value == "":
        if required:
            errors.append(RowError(row.number, name, "is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors.append(RowError(row.number, name, f"must be a number, not {value!r}"))
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        errors.append(RowError(row.number, name, f"must be a number, not {value!r}"))
        return None
    if number < Decimal(str(low)) or (above and number == Decimal(str(low))) or number > Decimal(str(high)):
        errors.append(RowError(row.number, name, f"{value} is out of range: must be {'above' if above else 'at least'} {_plain(low)} and at most {_plain(high)}"))
        return None
    return number


def _plain(x: float) -> str:
    """1000000, not 1e+06."""
    return f"{Decimal(str(x)).normalize():f}"


def whole(row: Row, name: str, errors: list[RowError], low: int, high: int, required: bool = True) -> int | None:
    """A whole number in [low, high]."""
    number = real(row, name, errors, low, high, required)
    if number is None:
        return None
    if number != number.to_integral_value():
        errors.append(RowError(row.number, name, f"{row.fields[name]} must be a whole number"))
        return None
    return int(number)


def words(row: Row, name: str, errors: list[RowError], check: Callable[[str], str | None], required: bool = True) -> list[str] | None:
    """A list: a JSON list of strings, or a string of items separated by ';'; `check` names what is wrong with an item."""
    value = row.fields.get(name)
    if isinstance(value, str):
        items: Iterable[Any] = [v.strip() for v in value.split(";") if v.strip()]
    elif isinstance(value, list):
        items = value
    elif value is None:
        items = []
    else:
        errors.append(RowError(row.number, name, f"must be a list, or items separated by ';', not {value!r}"))
        return None
    out: list[str] = []
    for item in items:
        problem = check(item) if isinstance(item, str) else f"{item!r} is not text"
        if problem:
            errors.append(RowError(row.number, name, problem))
            return None
        if item not in out:
            out.append(item)
    if required and not out:
        errors.append(RowError(row.number, name, "needs at least one item"))
        return None
    return out


def flag(row: Row, name: str, errors: list[RowError], default: bool) -> bool:
    """A yes/no field: true/false, yes/no, 1/0 (JSON: a boolean too)."""
    value = row.fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "yes", "1"):
        return True
    if word in ("false", "no", "0"):
        return False
    errors.append(RowError(row.number, name, f"must be true or false, not {value!r}"))
    return default
