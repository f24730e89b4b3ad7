"""The gateway's storage adapters (SQLite and PostgreSQL), one per job, over the tables in `tables`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from .batch_sql import IngestCounts
from .dead_letters import DeadLetters
from .engine import UTCDateTime, make_engine, normalise_db_url
from .forecasts import ForecastStore, view_of
from .registry import DeviceRegistry
from .retention import Retention, RetentionResult
from .settle import Settler
from .tables import GwCredential, GwCursor, GwDailyLevel, GwDeadLetter, GwDevice, GwForecast, GwReading, GwSlot
from .telemetry import PreparedTelemetry, TelemetryWriter

__all__ = [
    "DeadLetters",
    "DeviceRegistry",
    "ForecastStore",
    "GatewayStorage",
    "GwCredential",
    "GwCursor",
    "GwDailyLevel",
    "GwDeadLetter",
    "GwDevice",
    "GwForecast",
    "GwReading",
    "GwSlot",
    "IngestCounts",
    "PreparedTelemetry",
    "Retention",
    "RetentionResult",
    "Settler",
    "TelemetryWriter",
    "UTCDateTime",
    "make_engine",
    "normalise_db_url",
    "view_of",
]


@dataclass(frozen=True, slots=True)
class GatewayStorage:
    """The gateway's storage adapters over one database, each doing one job."""

    engine: Engine
    registry: DeviceRegistry
    telemetry: TelemetryWriter
    settler: Settler
    forecasts: ForecastStore
    dead_letters: DeadLetters
    retention: Retention

    @classmethod
    def on(cls, engine: Engine) -> GatewayStorage:
        """Every adapter over `engine` (a migrated database)."""
        return cls(
            engine, DeviceRegistry(engine), TelemetryWriter(engine), Settler(engine), ForecastStore(engine), DeadLetters(engine), Retention(engine)
        )
