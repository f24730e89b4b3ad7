"""The gateway: MQTT ingest, device registry, normalisation and forecasting."""

from ._clock import AcceleratedClock, Clock, ManualClock, WallClock
from ._db import UTCDateTime, insert_ignore, make_engine, normalise_db_url
from ._forecast import ForecastArrays, forecast_batch
from ._forecaster import Forecaster
from ._ingest import Ingestor
from ._messages import (
    PROTOCOL_VERSION,
    Birth,
    InvalidMessage,
    SlotSpec,
    Telemetry,
    parse_birth,
    parse_rfc3339,
    parse_status,
    parse_telemetry,
)
from ._models import GwDeadLetter, GwDevice, GwForecast, GwReading, GwSlot
from ._mqtt import EmbeddedBroker, MqttTarget, free_port, new_client, pick_port
from ._notify import DeviceNotifier
from ._store import GatewayStore, IngestCounts, TelemetryIn
from ._topics import PREFIX, parse_topic, topic_for, valid_device_id

__all__ = [
    "PREFIX",
    "PROTOCOL_VERSION",
    "AcceleratedClock",
    "Birth",
    "Clock",
    "DeviceNotifier",
    "EmbeddedBroker",
    "ForecastArrays",
    "Forecaster",
    "GatewayStore",
    "GwDeadLetter",
    "GwDevice",
    "GwForecast",
    "GwReading",
    "GwSlot",
    "IngestCounts",
    "Ingestor",
    "InvalidMessage",
    "ManualClock",
    "MqttTarget",
    "SlotSpec",
    "Telemetry",
    "TelemetryIn",
    "UTCDateTime",
    "WallClock",
    "forecast_batch",
    "free_port",
    "insert_ignore",
    "make_engine",
    "new_client",
    "normalise_db_url",
    "parse_birth",
    "parse_rfc3339",
    "parse_status",
    "parse_telemetry",
    "parse_topic",
    "pick_port",
    "topic_for",
    "valid_device_id",
]
