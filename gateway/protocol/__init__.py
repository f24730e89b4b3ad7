"""Device protocol v1 (SPEC 3): topics, messages, their schemas, the fast check and the access rules.

Pure: strings and bytes in, frozen values or a reasoned rejection out; no I/O.
"""

from .access import (
    DEVICE_PUBLISHES,
    SERVICE_PREFIX,
    SERVICE_USERNAME,
    Action,
    BrokerAccess,
    DeviceSecret,
    device_may,
    hash_secret,
    is_service_name,
    new_secret,
    service_may,
    verify_secret,
)
from .budget import DEFAULT_BURST, DEFAULT_PER_MINUTE, DeviceBudget
from .messages import (
    Birth,
    InvalidMessage,
    LevelEvent,
    SlotSpec,
    Telemetry,
    TelemetryIn,
    orders_payload,
    parse_birth,
    parse_rfc3339,
    parse_status,
    parse_telemetry,
)
from .schemas import validator
from .topics import DEFAULT_TOPICS, PREFIX, DeviceTopic, Suffix, Topics, parse_topic, topic_for, valid_device_id, valid_namespace
from .values import DEVICE_ID, MAX_BOOT, MAX_PAYLOAD, NAME, PROTOCOL_VERSION, SENTINELS, UNITS, Unit

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_PER_MINUTE",
    "DEFAULT_TOPICS",
    "DEVICE_ID",
    "DEVICE_PUBLISHES",
    "MAX_BOOT",
    "MAX_PAYLOAD",
    "NAME",
    "PREFIX",
    "PROTOCOL_VERSION",
    "SENTINELS",
    "SERVICE_PREFIX",
    "SERVICE_USERNAME",
    "UNITS",
    "Action",
    "Birth",
    "BrokerAccess",
    "DeviceBudget",
    "DeviceSecret",
    "DeviceTopic",
    "InvalidMessage",
    "LevelEvent",
    "SlotSpec",
    "Suffix",
    "Telemetry",
    "TelemetryIn",
    "Topics",
    "Unit",
    "device_may",
    "hash_secret",
    "is_service_name",
    "new_secret",
    "orders_payload",
    "parse_birth",
    "parse_rfc3339",
    "parse_status",
    "parse_telemetry",
    "parse_topic",
    "service_may",
    "topic_for",
    "valid_device_id",
    "valid_namespace",
    "validator",
    "verify_secret",
]
