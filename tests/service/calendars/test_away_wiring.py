"""Away periods reach the forecaster through the service's tick: device, claiming household, its calendars (SPEC 4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway import Birth, SlotSpec, TelemetryIn
from gateway.protocol import Telemetry
from replenish.bootstrap import Service
from replenish.households import ConsentScope
from replenish.settings import Settings

START = datetime(2026, 11, 8, tzinfo=UTC)
DAY = timedelta(days=1)
NOW = START + 30 * DAY  # 8 December
# Every Saturday 08:00 to Sunday 20:00 in New York (EST), from 12 December, four times.
WEEKENDS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//wiring//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:wk@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;TZID=America/New_York:20261212T080000\r\n"
    b"DTEND;TZID=America/New_York:20261213T200000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Lake house (away)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _readings(service: Service, device_id: str) -> None:
    """31 daily readings from START falling 1 %/day, from 100 % to 70 %."""
    batch = [TelemetryIn(device_id, Telemetry(i, START + i * DAY, {"ink": 100.0 - i}), START + i * DAY) for i in range(31)]
    service.gateway.telemetry.store(batch)


def test_the_tick_forecasts_with_the_claiming_households_away_periods_and_ordering_can_ask_for_them(db_url: str) -> None:
    service = Service(Settings(env="test", database_url=db_url, clock_start=NOW, clock_speed=1.0))
    service.migrate()
    assert service.provisioner is not None
    issued = {p.device_id: p for p in service.provisioner.provision(["home-printer", "away-printer", "loose-printer"])}
    home = service.households.create("home@example.org", "Home", "long enough password")
    away = service.households.create("away@example.org", "Away", "long enough password")
    assert home.id is not None and away.id is not None
    for household, device in ((home.id, "home-printer"), (away.id, "away-printer")):
        service.households.claim(household, device, issued[device].claim_code)
        service.consents.set(household, device, ConsentScope.TELEMETRY, True, "test")
    for device in issued:
        service.gateway.registry.record_birth(device, Birth("hp-67", "printer.inkjet", "1.0", (SlotSpec("ink", "ink.black", "percent", 100),)), START)
        service.gateway.registry.set_store_readings(device, True)
        _readings(service, device)
    service.calendars.add_range(away.id, date(2027, 1, 10), date(2027, 1, 19), "skiing")  # ten whole days in Berlin
    service.calendars.add_upload(away.id, "Lake house", WEEKENDS)

    periods = service.away(NOW)(["home-printer", "away-printer", "loose-printer"])
    assert list(periods) == ["away-printer"], "no calendar, no claim: no periods"
    weekends = [(NOW.replace(day=12, hour=13) + 7 * k * DAY, NOW.replace(day=14, hour=1) + 7 * k * DAY) for k in range(4)]
    assert periods["away-printer"] == [*weekends, (datetime(2027, 1, 9, 23, tzinfo=UTC), datetime(2027, 1, 19, 23, tzinfo=UTC))]
    assert [(p.start, p.source) for p in service.calendars.away(away.id, NOW, NOW + 8 * DAY)] == [(weekends[0][0], "Lake house")]

    service.tick(NOW)
    rows = service.gateway.forecasts.rows(["home-printer", "away-printer", "loose-printer"])
    stay, gone, loose = rows[("home-printer", "ink")], rows[("away-printer", "ink")], rows[("loose-printer", "ink")]
    assert stay.empty_p50 == pytest.approx(NOW + 70 * DAY, abs=timedelta(hours=1))
    assert loose.empty_p50 == stay.empty_p50
    # Use pauses for four weekends of 36 hours and ten days: the run-out moves by exactly that.
    assert gone.empty_p50 - stay.empty_p50 == pytest.approx(4 * timedelta(hours=36) + 10 * DAY, abs=timedelta(minutes=1))
    service.stop()
