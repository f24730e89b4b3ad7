"""The web: the household pages, the operator API, and the app that mounts them beside the fulfilment API."""

from .app import create_app, probe_app
from .calendars import CalendarPages
from .pages import Pages

__all__ = ["CalendarPages", "Pages", "create_app", "probe_app"]
