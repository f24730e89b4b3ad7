"""A fulfilment-systems file's rows checked one by one (docs/catalog.md); pure."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..rowfiles import IDENT, IDENT_RULE, Row, RowError, check_rows, flag, real, text

__all__ = ["FULFILLER_COLUMNS", "MAX_LEAD_TIME_DAYS", "FulfillerRow", "check_fulfillers"]

FULFILLER_COLUMNS = ("id", "name", "webhook_url", "lead_time_days", "sandbox", "webhook_secret", "api_key")
MAX_LEAD_TIME_DAYS = 60.0  # as a product's quantiles (catalog/packs.py): beyond two months is no offer to plan around
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s]*)?")
_MIN_SECRET_BYTES = 24  # Standard Webhooks: secrets of 24 to 64 random bytes
_MIN_API_KEY = 32  # keys are stored as a plain SHA-256 (fulfillers.py): only long random tokens are safe so


@dataclass(frozen=True, slots=True)
class FulfillerRow:
    """A fulfilment system's row that passed every check; secrets not given are generated (new) or kept (update)."""

    row: int
    id: str
    name: str
    webhook_url: str
    lead_time_days: float | None
    sandbox: bool | None
    webhook_secret: str | None
    api_key: str | None


def check_fulfillers(rows: Sequence[Row]) -> tuple[list[FulfillerRow], list[RowError]]:
    """The good rows and every error of the bad ones; an id seen twice is an error on its second row."""
    return check_rows(rows, FULFILLER_COLUMNS, check_fulfiller, "id", lambda f: f.id)


def check_fulfiller(row: Row, errors: list[RowError]) -> FulfillerRow | None:
    """One row checked; None (and `errors` extended) when something is wrong."""
    n = row.number
    before = len(errors)
    fid = text(row, "id", errors, 64, IDENT, IDENT_RULE)
    name = text(row, "name", errors, 128)
    url = text(row, "webhook_url", errors, 512, _URL, "an http:// or https:// URL")
    lead = real(row, "lead_time_days", errors, 0, MAX_LEAD_TIME_DAYS, required=False)
    sandbox = flag(row, "sandbox", errors, default=False) if row.fields.get("sandbox") not in (None, "") else None
    secret = text(row, "webhook_secret", errors, 128, required=False)
    if secret is not None and not _valid_secret(secret):
        errors.append(RowError(n, "webhook_secret", f"must be whsec_ and the base64 of {_MIN_SECRET_BYTES} to 64 random bytes (leave it empty to have one generated)"))
    key = text(row, "api_key", errors, 256, required=False)
    if key is not None and (len(key) < _MIN_API_KEY or any(c.isspace() for c in key)):
        errors.append(RowError(n, "api_key", f"must be a random token of at least {_MIN_API_KEY} characters without spaces (leave it empty to have one generated)"))
    if len(errors) > before or fid is None or name is None or url is None:
        return None
    return FulfillerRow(n, fid, name, url, None if lead is None else float(lead), sandbox, secret, key)


def _valid_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return _MIN_SECRET_BYTES <= len(raw) <= 64
