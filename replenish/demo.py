"""The demo: the service on an accelerated clock, a demo household, the built-in sink and a simulated fleet."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources

from firmware_sim import FleetDevice, PrinterProfile, SimClock
from gateway import free_port

from .bootstrap import HttpServer, Service, build_fleet, serve_http
from .catalog import PRODUCT_COLUMNS
from .fulfilment import Sink
from .households import ConsentScope
from .rowfiles import read_rows

__all__ = ["DEMO_CATALOG", "DEMO_EMAIL", "DEMO_PASSWORD", "Demo", "load_demo_catalog"]

DEMO_EMAIL = "demo@example.org"
DEMO_PASSWORD = "demo-password"
# Products for every simulated kind, sold by the demo sink; docs/catalog.md cites their figures.
DEMO_CATALOG = resources.files("replenish.catalog") / "demo_catalog.csv"
_INKS = ("black", "cyan", "magenta", "yellow")


def load_demo_catalog(service: Service) -> int:
    """Import the demo catalog through the operators' import (all or nothing); the number of products."""
    rows = read_rows(DEMO_CATALOG.read_text(encoding="utf-8"), "csv", PRODUCT_COLUMNS)
    report = service.catalog.import_rows(rows, all_or_nothing=True)
    if not report.applied:
        raise RuntimeError("the demo catalog does not import: " + "; ".join(map(str, report.errors)))
    return len(report.created) + len(report.updated)


class Demo:
    """Seeds and runs everything the demo shows, around a started service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.sink_server: HttpServer | None = None

    def start(self) -> None:
        """Seed the demo household and start the sink and the fleet."""
        svc = self.service
        sink_port = free_port()
        creds = svc.fulfillers.add("demo-sink", "Built-in demo fulfilment", f"http://127.0.0.1:{sink_port}/webhooks/orders", lead_time_days=2, sandbox=True)
        sink = Sink(creds.webhook_secret, svc.web_url, creds.api_key, svc.clock, ship_after=timedelta(hours=12), deliver_after=timedelta(days=2))
        self.sink_server = serve_http(sink.app(), "127.0.0.1", sink_port, "demo-sink")
        load_demo_catalog(svc)
        hh = svc.households.create(DEMO_EMAIL, "The Demo household", DEMO_PASSWORD, monthly_budget_cents=8000, address={"line1": "1 Demo Street", "city": "Sampletown", "country": "DE"})
        assert hh.id is not None
        devices = [
            FleetDevice("demo-office-printer", PrinterProfile(pages_per_day=8.0), {"black": 35.0, "cyan": 70.0, "magenta": 65.0, "yellow": 80.0}),
            FleetDevice("demo-home-printer", PrinterProfile(pages_per_day=1.0), {"black": 60.0}),
            FleetDevice("neighbour-printer", PrinterProfile(pages_per_day=1.0)),  # not claimed: nothing stored
        ]
        assert svc.provisioner is not None, "the demo runs the embedded broker, which takes device credentials"
        issued = {p.device_id: p for p in svc.provisioner.provision([d.device_id for d in devices])}
        for d in devices[:2]:
            svc.households.claim(hh.id, d.device_id, issued[d.device_id].claim_code)
            for scope in ConsentScope:
                svc.consents.set(hh.id, d.device_id, scope, True, DEMO_EMAIL)
            for slot in _INKS:
                sku = f"HP67XL-{slot[:2].upper()}"
                substitutes = svc.catalog.suggest_substitutes(hh.id, d.device_id, slot, sku, limit=2)
                svc.catalog.choose(hh.id, d.device_id, slot, sku, substitutes=substitutes)
        # A fortnight away three simulated weeks ahead: the forecast stretches over it and the page lists it.
        today = svc.clock.now().date()
        svc.calendars.add_range(hh.id, today + timedelta(days=21), today + timedelta(days=34), "Demo holiday")
        credentials = {device_id: p.password for device_id, p in issued.items()}
        self.fleet = build_fleet(svc.mqtt_target, devices, SimClock(svc.clock.speed, svc.clock.now()), interval_hours=1.0, credentials=credentials)
        self.fleet.start()

    def stop(self) -> None:
        """Stop the fleet and the sink."""
        self.fleet.stop()
        if self.sink_server is not None:
            self.sink_server.stop()
