"""Fulfilment systems: where orders go, how fast they deliver, and the API keys they authenticate back with."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..storage import Fulfiller
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
    """Registers fulfilment systems and finds them by API key."""

    def __init__(self, engine: Engine, default_lead_time_days: float = DEFAULT_LEAD_TIME_DAYS) -> None:
        self.engine = engine
        self.default_lead_time_days = default_lead_time_days  # for a system registered without its own

    def add(self, fulfiller_id: str, name: str, webhook_url: str, lead_time_days: float | None = None, sandbox: bool = False) -> FulfillerCredentials:
        """Register a fulfilment system; returns its webhook secret and API key, the only time the key is shown."""
        creds = FulfillerCredentials(fulfiller_id, new_secret(), "rk_" + secrets.token_urlsafe(32))
        with Session(self.engine) as s:
            s.add(
                Fulfiller(
                    id=fulfiller_id,
                    name=name,
                    webhook_url=webhook_url,
                    webhook_secret=creds.webhook_secret,
                    api_key_hash=hash_api_key(creds.api_key),
                    lead_time_days=self.default_lead_time_days if lead_time_days is None else lead_time_days,
                    sandbox=sandbox,
                )
            )
            s.commit()
        return creds

    def for_key(self, api_key: str) -> Fulfiller | None:
        """The fulfilment system an API key belongs to."""
        with Session(self.engine) as s:
            return s.exec(select(Fulfiller).where(Fulfiller.api_key_hash == hash_api_key(api_key))).first()
