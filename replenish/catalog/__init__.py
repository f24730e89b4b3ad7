"""The catalog: products that fit device models' slots, and each household's choice per slot."""

from .products import Catalog

__all__ = ["Catalog"]
