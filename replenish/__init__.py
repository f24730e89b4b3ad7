"""The replenishment service: households, consent, catalog, ordering, fulfilment, notifications and the web page.

Its public surface is the composition root and its settings; the rooms behind it are described in
docs/architecture.md. Imported lazily, so that `replenish --help` does not load the whole service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bootstrap import Service
    from .settings import Settings

__all__ = ["Service", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "Service":
        from .bootstrap import Service

        return Service
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(f"module 'replenish' has no attribute {name!r}")
