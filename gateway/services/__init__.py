"""The gateway's services: the ingest pipeline (MQTT to database) and the forecaster's I/O half."""

from .forecaster import AwayProvider, Forecaster, away_from
from .ingest import Ingestor
from .pipeline import IngestOptions

__all__ = ["AwayProvider", "Forecaster", "IngestOptions", "Ingestor", "away_from"]
