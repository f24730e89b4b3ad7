"""The service's HTTP application: health, metrics, the fulfilment API, the operator API and the household pages."""

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.sessions import SessionMiddleware

from ..catalog import Catalog
from ..fulfilment import FulfilmentEvents, Fulfillers
from ..fulfilment.api import fulfilment_router
from ..provisioning import Provisioner
from .admin import admin_router
from .calendars import CalendarPages, calendars_router
from .pages import Pages, pages_router

__all__ = ["create_app", "probe_app"]

_SESSION_DAYS = 14


def probe_app(title: str = "replenish") -> FastAPI:
    """An app with only `/healthz` and `/metrics`: what every process serves, gateway workers included."""
    app = FastAPI(title=title, version="0.1.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def create_app(
    pages: Pages,
    fulfillers: Fulfillers,
    events: FulfilmentEvents,
    provisioner: Provisioner | None,
    secret_key: str,
    admin_token: str = "",
    *,
    calendars: CalendarPages | None = None,
    catalog: Catalog | None = None,
) -> FastAPI:
    """The serving process's app (the calendar page when `calendars` is given; the catalog on the operator API when `catalog` is)."""
    app = probe_app()
    app.add_middleware(SessionMiddleware, secret_key=secret_key, same_site="lax", https_only=False, max_age=_SESSION_DAYS * 86400)
    app.include_router(fulfilment_router(fulfillers, pages.queries, events, pages.clock.now))
    app.include_router(admin_router(provisioner, admin_token, catalog, fulfillers))
    app.include_router(pages_router(pages))
    if calendars is not None:
        app.include_router(calendars_router(calendars))
    return app
