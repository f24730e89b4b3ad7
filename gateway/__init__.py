"""The gateway: MQTT ingest, device registry, normalisation and forecasting.

This is its public surface: what `replenish`, the benches and the CLI use. The rooms behind it
(`protocol`, `readings`, `forecasting`, `mqtt`, `storage`, `services`) are described in
docs/architecture.md; `replenish` reaches them only through these names.
"""

from .clock import AcceleratedClock, Clock, WallClock
from .forecasting import ForecastView, forecast_batch
from .mqtt import DeviceNotifier, EmbeddedAccess, EmbeddedBroker, IngestConnection, MosquittoDynsec, MqttTarget, free_port, pick_port
from .protocol import (
    SERVICE_USERNAME,
    Birth,
    BrokerAccess,
    DeviceSecret,
    InvalidMessage,
    OverBudget,
    SlotSpec,
    TelemetryIn,
    Topics,
    hash_secret,
    is_service_name,
    new_secret,
    parse_birth,
    parse_rfc3339,
    parse_status,
    parse_telemetry,
    valid_device_id,
    verify_secret,
)
from .services import AwayProvider, Forecaster, IngestOptions, Ingestor, away_from
from .storage import GatewayStorage, UTCDateTime, make_engine

__all__ = [
    "SERVICE_USERNAME",
    "AcceleratedClock",
    "AwayProvider",
    "Birth",
    "BrokerAccess",
    "Clock",
    "DeviceNotifier",
    "DeviceSecret",
    "EmbeddedAccess",
    "EmbeddedBroker",
    "ForecastView",
    "Forecaster",
    "GatewayStorage",
    "IngestConnection",
    "IngestOptions",
    "Ingestor",
    "InvalidMessage",
    "MosquittoDynsec",
    "MqttTarget",
    "OverBudget",
    "SlotSpec",
    "TelemetryIn",
    "Topics",
    "UTCDateTime",
    "WallClock",
    "away_from",
    "forecast_batch",
    "free_port",
    "hash_secret",
    "is_service_name",
    "make_engine",
    "new_secret",
    "parse_birth",
    "parse_rfc3339",
    "parse_status",
    "parse_telemetry",
    "pick_port",
    "valid_device_id",
    "verify_secret",
]
