"""Fulfilment systems, the product catalog, and each household's product choice per slot."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ._models import Fulfiller, Product, SlotSetting
from ._webhooks import new_secret

__all__ = ["Catalog", "FulfillerCredentials", "hash_api_key"]


def hash_api_key(key: str) -> str:
    """API keys are long random tokens, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FulfillerCredentials:
    """Shown once when a fulfilment system is registered; only hashes of the API key are kept."""

    fulfiller_id: str
    webhook_secret: str
    api_key: str


class Catalog:
    """Fulfillers, products and slot settings."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_fulfiller(self, fulfiller_id: str, name: str, webhook_url: str, lead_time_days: float = 4.0, sandbox: bool = False) -> FulfillerCredentials:
        """Register a fulfilment system; returns its webhook secret and API key."""
        creds = FulfillerCredentials(fulfiller_id, new_secret(), "rk_" + secrets.token_urlsafe(32))
        with Session(self.engine) as s:
            s.add(
                Fulfiller(
                    id=fulfiller_id,
                    name=name,
                    webhook_url=webhook_url,
                    webhook_secret=creds.webhook_secret,
                    api_key_hash=hash_api_key(creds.api_key),
                    lead_time_days=lead_time_days,
                    sandbox=sandbox,
                )
            )
            s.commit()
        return creds

    def fulfiller_for_key(self, api_key: str) -> Fulfiller | None:
        """The fulfilment system an API key belongs to."""
        with Session(self.engine) as s:
            return s.exec(select(Fulfiller).where(Fulfiller.api_key_hash == hash_api_key(api_key))).first()

    def add_product(self, product: Product) -> None:
        """Add or update a product."""
        with Session(self.engine) as s:
            s.merge(product)
            s.commit()

    def products_for(self, model: str, consumable: str) -> list[Product]:
        """Products compatible with a device model's slot."""
        with Session(self.engine) as s:
            items = s.exec(select(Product).where(Product.consumable == consumable).order_by(col(Product.unit_price_cents)))
            return [p for p in items if model in p.models]

    def choose(self, household_id: int, device_id: str, slot_id: str, sku: str, quantity: int = 1, mode: str = "auto") -> SlotSetting:
        """Set the product, quantity and mode of a slot."""
        if mode not in ("auto", "approve", "notify"):
            raise ValueError(f"mode must be auto, approve or notify, not {mode!r}")
        if not 1 <= quantity <= 20:
            raise ValueError("quantity must be between 1 and 20")
        setting = SlotSetting(device_id=device_id, slot_id=slot_id, household_id=household_id, sku=sku, quantity=quantity, mode=mode)
        with Session(self.engine) as s:
            if s.get(Product, sku) is None:
                raise ValueError(f"unknown product {sku!r}")
            s.merge(setting)
            s.commit()
        return setting

    def settings(self, device_ids: list[str] | None = None) -> list[SlotSetting]:
        """Slot settings, all or of some devices."""
        with Session(self.engine) as s:
            q = select(SlotSetting)
            if device_ids is not None:
                q = q.where(col(SlotSetting.device_id).in_(device_ids))
            return list(s.exec(q))
