"""The forecaster's storage: dirty slots, their readings since the last refill, and the forecasts made of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..forecasting import ForecastMethod, ForecastView
from .batch_sql import py_time
from .tables import GwForecast, GwReading, GwSlot

__all__ = ["ForecastStore", "view_of"]


def view_of(row: GwForecast) -> ForecastView:
    """A stored forecast as the typed view the rest of the product reads."""
    e = row.explanation or {}
    try:
        method = ForecastMethod(e.get("method", "none"))
    except ValueError:
        method = ForecastMethod.NONE
    segment = e.get("segment_start")
    return ForecastView(
        device_id=row.device_id,
        slot_id=row.slot_id,
        computed_at=row.computed_at,
        method=method,
        level_now=row.level_now,
        rate_per_day=row.rate_per_day,
        empty_p10=row.empty_p10,
        empty_p50=row.empty_p50,
        empty_p90=row.empty_p90,
        confidence=row.confidence,
        readings_used=row.n_used,
        step=float(e.get("step") or 0.0),
        prior_weight=e.get("prior_weight"),
        segment_start=py_time(datetime.fromisoformat(segment)) if segment else None,
        explanation=e,
    )


class ForecastStore:
    """Reads readings and slots for forecasting, and writes and reads gw_forecasts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def dirty_slots(self, limit: int) -> list[GwSlot]:
        """Slots whose readings changed since their last forecast."""
        with Session(self.engine) as s:
            return list(s.exec(select(GwSlot).where(GwSlot.dirty == True).limit(limit)))  # noqa: E712

    def readings_since(self, keys: Iterable[tuple[str, str, datetime | None]]) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        """Readings of each (device, slot) from its segment start on, ordered by time."""
        out: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        keys = list(keys)
        if not keys:
            return out
        r = GwReading.__table__.c  # type: ignore[attr-defined]
        conds = [sa.and_(r.device_id == d, r.slot_id == sl, *([r.ts >= start] if start is not None else [])) for d, sl, start in keys]
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(r.device_id, r.slot_id, r.ts, r.level).where(sa.or_(*conds)).order_by(r.ts)):
                out.setdefault((row.device_id, row.slot_id), []).append((row.ts, row.level))
        return out

    def history(self, device_id: str, slot_id: str, since: datetime) -> list[tuple[datetime, float]]:
        """Stored levels of one slot since a time."""
        return self.readings_since([(device_id, slot_id, since)]).get((device_id, slot_id), [])

    def write(self, forecasts: Sequence[GwForecast], cleared: Sequence[tuple[str, str]]) -> None:
        """Upsert forecasts and clear the dirty flag of the slots they cover."""
        with Session(self.engine) as s:
            for f in forecasts:
                s.merge(f)
            for device_id, slot_id in cleared:
                slot = s.get(GwSlot, (device_id, slot_id))
                if slot is not None:
                    slot.dirty = False
                    s.add(slot)
            s.commit()

    def rows(self, device_ids: Iterable[str]) -> dict[tuple[str, str], GwForecast]:
        """Latest stored forecasts of the given devices' slots, as rows."""
        with Session(self.engine) as s:
            q = select(GwForecast).where(GwForecast.device_id.in_(list(device_ids)))  # type: ignore[attr-defined]
            return {(f.device_id, f.slot_id): f for f in s.exec(q)}

    def views(self, device_ids: Iterable[str]) -> dict[tuple[str, str], ForecastView]:
        """Latest forecasts of the given devices' slots."""
        return {k: view_of(f) for k, f in self.rows(device_ids).items()}
