"""Prometheus metrics of the gateway, served on every process's /metrics (a gateway worker's own, on its REPLENISH_WEB_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["INGEST_LATENCY", "MESSAGES", "READINGS", "REJECTED"]

MESSAGES = Counter("replenish_gateway_messages_total", "Device messages received on protocol topics, by kind (others count as rejected, bad_topic)", ["kind"])
REJECTED = Counter("replenish_gateway_rejected_total", "Device messages rejected, by reason", ["reason"])
READINGS = Counter("replenish_gateway_readings_total", "Levels handled, by outcome", ["outcome"])
INGEST_LATENCY = Histogram(
    "replenish_gateway_ingest_seconds",
    "From the receipt of a stored batch's oldest message to the acknowledgement after its commit",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Each also counts as rejected{reason="store_failed"}; this says what the database refused them with.
QUARANTINED = Counter(
    "replenish_gateway_quarantined_total",
    "Device messages the database refused even when stored alone, dead-lettered as store_failed, by the error's class",
    ["error"],
)
# Each also counts as rejected{reason="over_budget"}; this says which kind of message a device flooded
# with, and the device's class (gateway.protocol.device_class: a bounded set, never the device's own text).
OVER_BUDGET = Counter(
    "replenish_gateway_over_budget_total",
    "Device messages dropped because their device sent more than its budget (gateway/protocol/budget.py), by message kind and device class",
    ["kind", "device_class"],
)
CLOCK_CORRECTIONS = Counter(
    "replenish_gateway_clock_corrections_total",
    "Telemetry messages whose readings were stored at another time than the device said, its clock being off (docs/protocol.md, clock skew)",
)
INGEST_LAG = Gauge(
    "replenish_gateway_ingest_lag_seconds",
    "Age of the oldest message this worker has received and not yet acknowledged (0 when none)",
)
# A takeover is another client connecting with this worker's client id (a second worker configured
# with it, or an intruder with the service's password): every service client id is reserved.
CONNECTION_LOSSES = Counter(
    "replenish_gateway_connection_losses_total",
    "Ingest connections to the broker lost, by cause: taken_over (MQTT 5 DISCONNECT 0x8E), disconnected (another DISCONNECT), lost (closed, reset, silent)",
    ["cause"],
)
__all__ += ["CLOCK_CORRECTIONS", "CONNECTION_LOSSES", "INGEST_LAG", "OVER_BUDGET", "QUARANTINED"]
