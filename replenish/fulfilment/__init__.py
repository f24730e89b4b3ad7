"""Fulfilment: fulfilment systems, the transactional outbox of signed webhooks, the events they report, the demo sink."""

from .events import EventRejected, FulfilmentEvents
from .fulfiller_rows import FULFILLER_COLUMNS, FulfillerRow, check_fulfillers
from .fulfillers import DEFAULT_LEAD_TIME_DAYS, FulfillerCredentials, Fulfillers, hash_api_key
from .outbox import OutboxDispatcher, backoff, enqueue_release
from .payload import order_document, released_webhook
from .sink import ReceivedWebhook, Sink
from .webhooks import new_secret, sign_headers

__all__ = [
    "DEFAULT_LEAD_TIME_DAYS",
    "FULFILLER_COLUMNS",
    "FulfillerRow",
    "check_fulfillers",
    "EventRejected",
    "FulfillerCredentials",
    "Fulfillers",
    "FulfilmentEvents",
    "OutboxDispatcher",
    "ReceivedWebhook",
    "Sink",
    "backoff",
    "enqueue_release",
    "hash_api_key",
    "new_secret",
    "order_document",
    "released_webhook",
    "sign_headers",
]
