"""MQTT adapters: ingest's own subscriber, the device notifier, the embedded broker and its ACL, Mosquitto's dynamic security."""

from .dynsec import DynsecError, MosquittoDynsec
from .embedded import EmbeddedBroker
from .embedded_auth import EmbeddedAccess
from .ingest_connection import V5, V311, Delivery, IngestConnection, MqttRefused
from .notifier import DeviceNotifier
from .target import MqttTarget, free_port, new_client, pick_port

__all__ = [
    "V5",
    "V311",
    "Delivery",
    "DeviceNotifier",
    "DynsecError",
    "EmbeddedAccess",
    "EmbeddedBroker",
    "IngestConnection",
    "MosquittoDynsec",
    "MqttRefused",
    "MqttTarget",
    "free_port",
    "new_client",
    "pick_port",
]
