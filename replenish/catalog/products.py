"""The product catalog, and each household's product choice per slot."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gateway import GatewayStorage

from ..ordering import SlotMode
from ..rowfiles import ImportReport, Row, RowError
from ..storage import Fulfiller, Household, Product, SlotSetting
from .packs import Candidate, LeadTime, fits, order_up_to_packs, substitute_problems, suggest_substitutes
from .rows import ProductRow, check_products

__all__ = ["MAX_QUANTITY", "MAX_SUBSTITUTES", "Catalog"]

MAX_QUANTITY = 20  # packs per order: more is a typo, not a household's need
MAX_SUBSTITUTES = 5  # a household ranks a few fall-backs, not the whole shelf


class Catalog:
    """Products, and slot settings; with the gateway's registry, choices are checked against the device's model and slot."""

    def __init__(self, engine: Engine, gateway: GatewayStorage | None = None) -> None:
        self.engine = engine
        self.gateway = gateway

    def add_product(self, product: Product) -> None:
        """Add or update a product."""
        with Session(self.engine) as s:
            s.merge(product)
            s.commit()

    def import_rows(self, rows: Sequence[Row], all_or_nothing: bool = False, progress: Callable[[int], None] | None = None) -> ImportReport:
        """Create or update products by SKU from a file's rows (docs/catalog.md); bad rows are reported, never applied."""
        good, errors = check_products(rows)
        with Session(self.engine) as s:
            known_fulfillers = set(s.exec(select(Fulfiller.id).where(col(Fulfiller.id).in_({r.fulfiller_id for r in good}))))
            missing = [r for r in good if r.fulfiller_id not in known_fulfillers]
            for r in missing:
                errors.append(RowError(r.row, "fulfiller_id", f"no fulfilment system {r.fulfiller_id!r} (add it first: replenish fulfillers add)"))
            errors.sort(key=lambda e: e.row)
            if errors and all_or_nothing:
                return ImportReport((), (), tuple(errors), applied=False)
            good = [r for r in good if r.fulfiller_id in known_fulfillers]
            known = set(s.exec(select(Product.sku).where(col(Product.sku).in_([r.sku for r in good]))))
            for i, r in enumerate(good):
                s.merge(_product(r))
                if progress is not None:
                    progress(i + 1)
            s.commit()
        return ImportReport(tuple(r.sku for r in good if r.sku not in known), tuple(r.sku for r in good if r.sku in known), tuple(errors), applied=True)

    def products(self) -> list[Product]:
        """Every product, by SKU."""
        with Session(self.engine) as s:
            return list(s.exec(select(Product).order_by(col(Product.sku))))

    def products_for(self, model: str, consumable: str, slot_id: str | None = None, unit: str | None = None) -> list[Product]:
        """Products compatible with a device model's slot (any slot of the consumable when `slot_id` is None), cheapest first."""
        with Session(self.engine) as s:
            items = s.exec(select(Product).where(Product.consumable == consumable).order_by(col(Product.unit_price_cents), col(Product.sku)))
            return [p for p in items if model in p.models and (slot_id is None or fits(p, model, slot_id, consumable, unit))]

    def compatible(self, device_id: str, slot_id: str, sku: str) -> list[Product]:
        """The products that may stand in for `sku` in this slot: those fitting the device's announced model and slot;
        before its birth, those of the chosen product's consumable and unit sharing one of its models."""
        with Session(self.engine) as s:
            chosen = s.get(Product, sku)
            if chosen is None:
                raise ValueError(f"unknown product {sku!r}")
            place = self._slot(device_id, slot_id)
            if place is not None:
                model, consumable, unit, _ = place
                return [p for p in s.exec(select(Product).order_by(col(Product.sku))) if fits(p, model, slot_id, consumable, unit)]
            same = s.exec(select(Product).where(Product.consumable == chosen.consumable).order_by(col(Product.sku)))
            return [p for p in same if set(p.models) & set(chosen.models) and (not p.unit or not chosen.unit or p.unit == chosen.unit)]

    def suggest_substitutes(self, household_id: int, device_id: str, slot_id: str, sku: str, limit: int = 3) -> list[str]:
        """Compatible products in the household's currency, cheapest per slot unit first: a starting ranking a household may change."""
        with Session(self.engine) as s:
            household = s.get(Household, household_id)
            fulfillers = {f.id: f.lead_time_days for f in s.exec(select(Fulfiller))}
        if household is None:
            raise ValueError(f"unknown household {household_id}")
        candidates = [
            Candidate(p.sku, p.unit_price_cents, p.currency, p.pack_size, LeadTime.of(p.lead_p10_days, p.lead_p50_days, p.lead_p90_days, fulfillers[p.fulfiller_id]).p50)
            for p in self.compatible(device_id, slot_id, sku)
        ]
        return suggest_substitutes(sku, candidates, household.currency, min(limit, MAX_SUBSTITUTES))

    def choose(
        self, household_id: int, device_id: str, slot_id: str, sku: str, quantity: int = 1, mode: SlotMode | str = SlotMode.AUTO,
        substitutes: Sequence[str] = (), target_level: float | None = None,
    ) -> SlotSetting:  # fmt: skip
        """Set the product, its ranked substitutes, the quantity (or order-up-to target) and the mode of a slot."""
        try:
            mode = SlotMode(mode)
        except ValueError:
            raise ValueError(f"mode must be auto, approve or notify, not {mode!r}") from None
        compatible = {p.sku: p for p in self.compatible(device_id, slot_id, sku)}  # ValueError for an unknown SKU
        place = self._slot(device_id, slot_id)
        if place is not None and sku not in compatible:
            raise ValueError(f"{sku!r} does not fit slot {slot_id!r} of a {place[0]!r} ({place[1]}, {place[2]})")
        problems = substitute_problems(sku, list(substitutes), set(compatible), MAX_SUBSTITUTES)
        if problems:
            raise ValueError("substitutes: " + "; ".join(problems))
        if target_level is not None:
            quantity = self._packs_to_target(compatible[sku], target_level, place[3] if place is not None else None)
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ValueError(f"quantity must be between 1 and {MAX_QUANTITY}")
        setting = SlotSetting(
            device_id=device_id, slot_id=slot_id, household_id=household_id, sku=sku, quantity=quantity, mode=mode.value,
            target_level=target_level, substitutes=list(substitutes),
        )  # fmt: skip
        with Session(self.engine) as s:
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

    def _slot(self, device_id: str, slot_id: str) -> tuple[str, str, str, float] | None:
        """(model, consumable, unit, capacity) of a slot its device has announced; None before its birth."""
        if self.gateway is None:
            return None
        model = self.gateway.registry.models([device_id]).get(device_id)
        slot = next((x for x in self.gateway.registry.slots([device_id]) if x.slot_id == slot_id), None)
        if model is None or slot is None:
            return None
        return model, slot.consumable, slot.unit, slot.capacity

    @staticmethod
    def _packs_to_target(product: Product, target: float, capacity: float | None) -> int:
        """The packs that fill an empty slot to `target`: the quantity the planner orders until it orders up to the forecast."""
        if not target > 0:
            raise ValueError(f"target level must be above 0, not {target}")
        if capacity is not None and target > capacity:
            raise ValueError(f"target level {target:g} is above the slot's capacity {capacity:g}")
        if not product.pack_size:
            raise ValueError(f"{product.sku!r} has no pack size: give a quantity instead of a target level")
        return order_up_to_packs(0.0, target, product.pack_size)


def _product(r: ProductRow) -> Product:
    lead = r.lead_time
    return Product(
        sku=r.sku, name=r.name, consumable=r.consumable, models=list(r.models), slots=list(r.slots), unit=r.unit, pack_size=r.pack_size,
        unit_price_cents=r.unit_price_cents, currency=r.currency, fulfiller_id=r.fulfiller_id,
        lead_p10_days=lead.p10 if lead else None, lead_p50_days=lead.p50 if lead else None, lead_p90_days=lead.p90 if lead else None,
    )  # fmt: skip
