"""Simulated household devices; they speak only MQTT and import nothing of the product's."""

from ._clock import SimClock
from ._fleet import Fleet, FleetDevice
from ._printer import InkjetPrinter, PrinterProfile

__all__ = ["Fleet", "FleetDevice", "InkjetPrinter", "PrinterProfile", "SimClock"]
