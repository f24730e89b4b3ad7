"""Fulfilment systems: where orders go, how fast they deliver, and the API keys they authenticate back with."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..rowfiles import ImportReport, Row, RowError
from ..storage import Fulfiller
from .fulfiller_rows import FulfillerRow, check_fulfiller, check_fulfillers
from .webhooks import new_secret

__all__ = ["DEFAULT_LEAD_TIME_DAYS", "FulfillerCredentials", "Fulfillers", "hash_api_key"]

DEFAULT_LEAD_TIME_DAYS = 4.0  # US e-commerce averages 3.7 days (../shared/USAGE_FIGURES.md); REPLENISH_LEAD_TIME_DAYS


def hash_api_key(key: str) -> str:
    """API keys are long random tokens, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FulfillerCredentials:
    """Shown once when a fulfilment system is registered; only hashes of the API key are kept."""

    fulfiller_id: str
    webhook_secret: str
    api_key: str


class Fulfillers:
    """Registers and updates fulfilment systems and finds them by API key."""

    def __init__(self, engine: Engine, default_lead_time_days: float = DEFAULT_LEAD_TIME_DAYS) -> None:
        self.engine = engine
        self.default_lead_time_days = default_lead_time_days  # for a system registered without its own

    def add(
        self, fulfiller_id: str, name: str, webhook_url: str, lead_time_days: float | None = None, sandbox: bool = False,
        webhook_secret: str | None = None, api_key: str | None = None,
    ) -> FulfillerCredentials:  # fmt: skip
        """Register a new fulfilment system (ValueError naming the bad value, or an id taken); returns its credentials, shown only now."""
        fields = {"id": fulfiller_id, "name": name, "webhook_url": webhook_url, "lead_time_days": lead_time_days, "sandbox": sandbox}
        fields |= {"webhook_secret": webhook_secret, "api_key": api_key}
        errors: list[RowError] = []
        row = check_fulfiller(Row(1, fields), errors)
        if row is None:
            raise ValueError("; ".join(f"{e.field}: {e.reason}" for e in errors))
        with Session(self.engine) as s:
            if s.get(Fulfiller, fulfiller_id) is not None:
                raise ValueError(f"fulfilment system {fulfiller_id!r} exists already (import a file to update it)")
            creds = self._upsert(s, row)
            s.commit()
        assert creds is not None
        return creds

    def import_rows(
        self, rows: Sequence[Row], all_or_nothing: bool = False, progress: Callable[[int], None] | None = None
    ) -> tuple[ImportReport, list[FulfillerCredentials]]:
        """Create or update fulfilment systems by id; the credentials of the new ones (and any secret given anew) come back once."""
        good, errors = check_fulfillers(rows)
        if errors and all_or_nothing:
            return ImportReport((), (), tuple(errors), applied=False), []
        created: list[str] = []
        updated: list[str] = []
        issued: list[FulfillerCredentials] = []
        with Session(self.engine) as s:
            known = set(s.exec(select(Fulfiller.id).where(col(Fulfiller.id).in_([r.id for r in good]))))
            for i, row in enumerate(good):
                (updated if row.id in known else created).append(row.id)
                creds = self._upsert(s, row)
                if creds is not None:
                    issued.append(creds)
                if progress is not None:
                    progress(i + 1)
            s.commit()
        return ImportReport(tuple(created), tuple(updated), tuple(errors), applied=True), issued

    def _upsert(self, s: Session, row: FulfillerRow) -> FulfillerCredentials | None:
        """Write one row; a new system gets the secrets it was not given, an old one keeps those not given."""
        f = s.get(Fulfiller, row.id)
        if f is None:
            secret, key = row.webhook_secret or new_secret(), row.api_key or "rk_" + secrets.token_urlsafe(32)
            lead = self.default_lead_time_days if row.lead_time_days is None else row.lead_time_days
            s.add(Fulfiller(id=row.id, name=row.name, webhook_url=row.webhook_url, webhook_secret=secret, api_key_hash=hash_api_key(key), lead_time_days=lead, sandbox=bool(row.sandbox)))
            return FulfillerCredentials(row.id, secret, key)
        f.name, f.webhook_url = row.name, row.webhook_url
        if row.lead_time_days is not None:
            f.lead_time_days = row.lead_time_days
        if row.sandbox is not None:
            f.sandbox = row.sandbox
        if row.webhook_secret is not None:
            f.webhook_secret = row.webhook_secret
        if row.api_key is not None:
            f.api_key_hash = hash_api_key(row.api_key)
        s.add(f)
        return None

    def all(self) -> list[Fulfiller]:
        """Every fulfilment system, by id."""
        with Session(self.engine) as s:
            return list(s.exec(select(Fulfiller).order_by(col(Fulfiller.id))))

    def for_key(self, api_key: str) -> Fulfiller | None:
        """The fulfilment system an API key belongs to."""
        with Session(self.engine) as s:
            return s.exec(select(Fulfiller).where(Fulfiller.api_key_hash == hash_api_key(api_key))).first()
