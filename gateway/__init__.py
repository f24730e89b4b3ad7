"""The gateway: MQTT ingest, device registry, normalisation and forecasting.

This is its public surface: what `replenish`, the benches and the CLI use. The rooms behind it
(`protocol`, `readings`, `forecasting`, `mqtt`, `storage`, `services`) are described in
docs/architecture.md; `replenish` reaches them only through these names.
"""

from .clock import AcceleratedClock, Clock, ManualClock, WallClock
from .forecasting import ForecastArrays, ForecastMethod, ForecastView, forecast_batch
from .mqtt import DeviceNotifier, DynsecError, EmbeddedAccess, EmbeddedBroker, IngestConnection, MosquittoDynsec, MqttTarget, free_port, new_client, pick_port
from .protocol import (
    PROTOCOL_VERSION,
    SERVICE_USERNAME,
    Birth,
    BrokerAccess,
    DeviceSecret,
    InvalidMessage,
    SlotSpec,
    Telemetry,
    TelemetryIn,
    Topics,
    hash_secret,
    new_secret,
    parse_birth,
    parse_rfc3339,
    parse_status,
    parse_telemetry,
    valid_device_id,
    verify_secret,
)
from .services import AwayProvider, Forecaster, IngestOptions, Ingestor, away_from
from .storage import GatewayStorage, GwDevice, GwSlot, IngestCounts, UTCDateTime, make_engine

__all__ = [
    "PROTOCOL_VERSION",
    "SERVICE_USERNAME",
    "AcceleratedClock",
    "AwayProvider",
    "Birth",
    "BrokerAccess",
    "Clock",
    "DeviceNotifier",
    "DeviceSecret",
    "DynsecError",
    "EmbeddedAccess",
    "EmbeddedBroker",
    "ForecastArrays",
    "ForecastMethod",
    "ForecastView",
    "Forecaster",
    "GatewayStorage",
    "GwDevice",
    "GwSlot",
    "IngestConnection",
    "IngestCounts",
    "IngestOptions",
    "Ingestor",
    "InvalidMessage",
    "ManualClock",
    "MosquittoDynsec",
    "MqttTarget",
    "SlotSpec",
    "Telemetry",
    "TelemetryIn",
    "Topics",
    "UTCDateTime",
    "WallClock",
    "away_from",
    "forecast_batch",
    "free_port",
    "hash_secret",
    "make_engine",
    "new_client",
    "new_secret",
    "parse_birth",
    "parse_rfc3339",
    "parse_status",
    "parse_telemetry",
    "pick_port",
    "valid_device_id",
    "verify_secret",
]
