"""What ordering needs from its neighbours, as ports the composition root fills (`replenish.bootstrap`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from ..storage import Household, Order

__all__ = ["AwayPeriods", "ReleaseOutbox"]

# The households' away periods overlapping [start, end), merged and sorted, by household
# (`calendars.Calendars.away_of`): no parcel may arrive inside one (SPEC 4).
AwayPeriods = Callable[[Iterable[int], datetime, datetime], Mapping[int, Sequence[tuple[datetime, datetime]]]]


class ReleaseOutbox(Protocol):
    """Writes the webhook that hands a released order to fulfilment, in the transaction of the release."""

    def __call__(self, session: Session, order: Order, household: Household, now: datetime) -> None: ...
