"""Ordering: the pure policy and planner, the order status machine, and the services that place and release orders."""

from .actions import OrderActions, changed
from .placing import OrderPlacer, PlanResult
from .needs import NOT_NOW, EndedBy, NeedOrders, NotNow, need_key, need_orders, not_now_after_cancel, order_key, snoozed
from .planner import Budget, ForecastFacts, Offer, Placement, Plan, PlanInputs, SlotChoice, plan
from .policy import Decision, SlotMode, SlotSituation, decide
from .ports import AwayPeriods, ReleaseOutbox
from .queries import OrderQueries
from .stockouts import StockOutChanges, StockOuts, stock_out_changes
from .status import CANCELLABLE, COMMITTED, FINAL, OPEN, FulfilmentEvent, OrderStatus, after_event, takes_events

__all__ = [
    "AwayPeriods",
    "CANCELLABLE",
    "COMMITTED",
    "FINAL",
    "NOT_NOW",
    "OPEN",
    "Budget",
    "Decision",
    "EndedBy",
    "ForecastFacts",
    "FulfilmentEvent",
    "NeedOrders",
    "NotNow",
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
    "StockOutChanges",
    "StockOuts",
    "after_event",
    "changed",
    "decide",
    "need_key",
    "need_orders",
    "not_now_after_cancel",
    "order_key",
    "plan",
    "snoozed",
    "stock_out_changes",
    "takes_events",
]
