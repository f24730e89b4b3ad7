"""A clock-poisoning message followed by correct readings: every correct reading is stored at its true time (SPEC 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from gateway import Birth, GatewayStorage, SlotSpec, TelemetryIn
from gateway.protocol import Telemetry

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
DELAY = timedelta(seconds=0.3)


def test_one_reading_dated_days_ahead_does_not_date_the_later_ones_in_the_past(storage: GatewayStorage) -> None:
    storage.registry.record_birth("prn-1", Birth("m", "printer.inkjet", "1", (SlotSpec("black", "ink.black", "percent", 100),)), T0 - H)
    storage.registry.set_store_readings("prn-1", True)

    def reading(seq: int, true_at: datetime, ahead: timedelta = timedelta(0)) -> TelemetryIn:
        return TelemetryIn("prn-1", Telemetry(seq, true_at + ahead, {"black": 90.0 - seq}), true_at + DELAY)

    corrections = REGISTRY.get_sample_value("replenish_gateway_clock_corrections_total") or 0.0
    storage.telemetry.store([reading(i, T0 + i * H) for i in range(6)])
    storage.telemetry.store([reading(6, T0 + 6 * H, ahead=timedelta(days=6))])  # one message six days ahead
    for i in range(7, 20):  # then the device is right again, a message at a time as it arrives
        storage.telemetry.store([reading(i, T0 + i * H)])
    stored = dict(storage.forecasts.history("prn-1", "black", T0 - H))
    truth = {T0 + i * H: (90.0 - i) / 100 for i in range(20) if i != 6}
    assert {t: v for t, v in stored.items() if t != T0 + 6 * H + DELAY} == truth, "a correct reading was moved"
    assert stored[T0 + 6 * H + DELAY] == 0.84, "the outlier itself is held at its arrival"
    assert (REGISTRY.get_sample_value("replenish_gateway_clock_corrections_total") or 0.0) - corrections == 1, "only the outlier was moved"
    (device,) = storage.registry.devices(["prn-1"])
    assert device.clock_offset_s is not None and abs(device.clock_offset_s) < 60
