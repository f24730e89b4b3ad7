"""The gateway: MQTT ingest, device registry, normalisation and forecasting."""

from ._access import SERVICE_USERNAME, BrokerAccess, DeviceSecret, hash_secret, new_secret, verify_secret
from ._clock import AcceleratedClock, Clock, ManualClock, WallClock
from ._db import UTCDateTime, make_engine, normalise_db_url
from ._dynsec import DynsecError, MosquittoDynsec
from ._embedded_auth import EmbeddedAccess
from ._forecast import MEASURED_METHODS, ForecastArrays, forecast_batch
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
from ._models import GwCredential, GwDeadLetter, GwDevice, GwForecast, GwReading, GwSlot
from ._mqtt import EmbeddedBroker, MqttTarget, free_port, new_client, pick_port
from ._notify import DeviceNotifier
from ._store import GatewayStore, IngestCounts, TelemetryIn
from ._topics import PREFIX, parse_topic, topic_for, valid_device_id

__all__ = [
    "MEASURED_METHODS",
    "PREFIX",
    "PROTOCOL_VERSION",
    "SERVICE_USERNAME",
    "AcceleratedClock",
    "Birth",
    "BrokerAccess",
    "Clock",
    "DeviceNotifier",
    "DeviceSecret",
    "DynsecError",
    "EmbeddedAccess",
    "EmbeddedBroker",
    "ForecastArrays",
    "Forecaster",
    "GatewayStore",
    "GwCredential",
    "GwDeadLetter",
    "GwDevice",
    "GwForecast",
    "GwReading",
    "GwSlot",
    "IngestCounts",
    "Ingestor",
    "InvalidMessage",
    "ManualClock",
    "MosquittoDynsec",
    "MqttTarget",
    "SlotSpec",
    "Telemetry",
    "TelemetryIn",
    "UTCDateTime",
    "WallClock",
    "forecast_batch",
    "free_port",
    "hash_secret",
    "make_engine",
    "new_client",
    "new_secret",
    "normalise_db_url",
    "parse_birth",
    "parse_rfc3339",
    "parse_status",
    "parse_telemetry",
    "parse_topic",
    "pick_port",
    "topic_for",
    "valid_device_id",
    "verify_secret",
]
