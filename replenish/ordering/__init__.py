"""Ordering: the pure policy and planner, the order status machine, and the services that place and release orders."""

from .actions import OrderActions
from .placing import OrderPlacer, PlanResult
from .planner import Budget, ForecastFacts, Offer, Placement, Plan, PlanInputs, SlotChoice, need_key, plan
from .policy import Decision, SlotMode, SlotSituation, decide
from .ports import NotifyDevice, ReleaseOutbox
from .queries import OrderQueries
from .status import CANCELLABLE, COMMITTED, FINAL, OPEN, FulfilmentEvent, OrderStatus, after_event, takes_events

__all__ = [
    "CANCELLABLE",
    "COMMITTED",
    "FINAL",
    "OPEN",
    "Budget",
    "Decision",
    "ForecastFacts",
    "FulfilmentEvent",
    "NotifyDevice",
    "Offer",
    "OrderActions",
    "OrderPlacer",
    "OrderQueries",
    "OrderStatus",
    "Placement",
    "Plan",
    "PlanInputs",
    "PlanResult",
    "ReleaseOutbox",
    "SlotChoice",
    "SlotMode",
    "SlotSituation",
    "after_event",
    "decide",
    "need_key",
    "plan",
    "takes_events",
]
