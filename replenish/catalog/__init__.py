"""The catalog: products that fit device models' slots, each household's choice per slot, and the catalog's pure rules."""

from ..money import CURRENCIES, to_minor
from .packs import MAX_LEAD_DAYS, LeadTime, fits, order_up_to_packs, suggest_substitutes
from .products import MAX_QUANTITY, MAX_SUBSTITUTES, Catalog
from .rows import PRODUCT_COLUMNS, ProductRow, check_products

__all__ = [
    "CURRENCIES",
    "MAX_LEAD_DAYS",
    "MAX_QUANTITY",
    "MAX_SUBSTITUTES",
    "PRODUCT_COLUMNS",
    "Catalog",
    "LeadTime",
    "ProductRow",
    "check_products",
    "fits",
    "order_up_to_packs",
    "suggest_substitutes",
    "to_minor",
]
