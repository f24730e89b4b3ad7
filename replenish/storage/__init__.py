"""The service's storage: its tables (beside the gateway's) and the one schema history of both."""

from .migrate import MIGRATIONS, alembic_config, migrate
from .tables import AwayRange, Claim, ConsentRecord, Fulfiller, Household, HouseholdCalendar, Order, OrderEvent, OutboxMessage, Product, ProvisionedDevice, SlotSetting

__all__ = [
    "MIGRATIONS",
    "AwayRange",
    "Claim",
    "ConsentRecord",
    "Fulfiller",
    "Household",
    "HouseholdCalendar",
    "Order",
    "OrderEvent",
    "OutboxMessage",
    "Product",
    "ProvisionedDevice",
    "SlotSetting",
    "alembic_config",
    "migrate",
]
