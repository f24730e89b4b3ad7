"""The product catalog, and each household's product choice per slot."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..ordering import SlotMode
from ..storage import Product, SlotSetting

__all__ = ["Catalog"]

_MAX_QUANTITY = 20  # packs per order: more is a typo, not a household's need


class Catalog:
    """Products and slot settings."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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

    def choose(self, household_id: int, device_id: str, slot_id: str, sku: str, quantity: int = 1, mode: SlotMode | str = SlotMode.AUTO) -> SlotSetting:
        """Set the product, quantity and mode of a slot."""
        try:
            mode = SlotMode(mode)
        except ValueError:
            raise ValueError(f"mode must be auto, approve or notify, not {mode!r}") from None
        if not 1 <= quantity <= _MAX_QUANTITY:
            raise ValueError(f"quantity must be between 1 and {_MAX_QUANTITY}")
        setting = SlotSetting(device_id=device_id, slot_id=slot_id, household_id=household_id, sku=sku, quantity=quantity, mode=mode.value)
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
