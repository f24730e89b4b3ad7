"""What ordering needs from its neighbours, as ports the composition root fills (`replenish.bootstrap`)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from ..storage import Household, Order

__all__ = ["ReleaseOutbox"]


class ReleaseOutbox(Protocol):
    """Writes the webhook that hands a released order to fulfilment, in the transaction of the release."""

    def __call__(self, session: Session, order: Order, household: Household, now: datetime) -> None: ...
