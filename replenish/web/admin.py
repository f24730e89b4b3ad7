"""The operator API (`/api/admin/v1`, behind REPLENISH_ADMIN_TOKEN): device provisioning, the catalog, fulfilment systems."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, model_validator

from ..catalog import PRODUCT_COLUMNS, Catalog
from ..fulfilment import FULFILLER_COLUMNS, Fulfillers
from ..provisioning import Provisioner, numbered_ids
from ..rowfiles import FileError, Rows, format_of, read_rows
from .auth import operator_check

__all__ = ["FulfillerRequest", "ProvisionRequest", "admin_router"]

_MAX_DEVICES = 10_000  # a batch off the line; the provisioner takes no more at a time
_MAX_FILE_BYTES = 16 * 1024 * 1024  # a catalog of ~100,000 products; a bigger upload is a mistake or an attack


class ProvisionRequest(BaseModel):
    """Devices to provision: explicit ids, or `count` numbered ids after `prefix`."""

    device_ids: list[str] = Field(default_factory=list, max_length=_MAX_DEVICES)
    prefix: str = Field("", max_length=50)
    count: int = Field(0, ge=0, le=_MAX_DEVICES)
    start: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one_way(self) -> "ProvisionRequest":
        if bool(self.device_ids) == bool(self.prefix and self.count):
            raise ValueError("give either device_ids, or prefix and count")
        return self

    def ids(self) -> list[str]:
        """The device ids asked for."""
        return self.device_ids or numbered_ids(self.prefix, self.count, self.start)


class FulfillerRequest(BaseModel):
    """A fulfilment system to register; secrets not given are generated and shown once."""

    id: str
    name: str
    webhook_url: str
    lead_time_days: float | None = None
    sandbox: bool = False
    webhook_secret: str | None = None
    api_key: str | None = None


async def _file_rows(request: Request, fmt: str | None, columns: tuple[str, ...]) -> Rows:
    """The uploaded file's rows; its format from `?format=`, else its content type."""
    body = await request.body()
    if len(body) > _MAX_FILE_BYTES:
        raise HTTPException(413, f"the file is larger than {_MAX_FILE_BYTES // 2**20} MiB: split it")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
        name = {"text/csv": "upload.csv", "application/json": "upload.json"}.get(kind, "upload")
        return read_rows(text, format_of(name, fmt), columns)
    except UnicodeDecodeError:
        raise HTTPException(422, "the file must be UTF-8 text") from None
    except FileError as exc:
        raise HTTPException(422, str(exc)) from None


def admin_router(provisioner: Provisioner | None, admin_token: str, catalog: Catalog | None = None, fulfillers: Fulfillers | None = None) -> APIRouter:
    """The operator's routes."""
    admin = APIRouter(prefix="/api/admin/v1", dependencies=[Depends(operator_check(admin_token))])

    @admin.post("/devices")
    async def provision(body: ProvisionRequest) -> dict[str, Any]:
        """Issue MQTT credentials and claim codes; the only time either is shown."""
        if provisioner is None:
            raise HTTPException(409, "no broker access configured: set REPLENISH_MQTT_ADMIN_URL for Mosquitto's dynamic security")
        try:
            issued = await run_in_threadpool(provisioner.provision, body.ids())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"devices": [{"device_id": p.device_id, "password": p.password, "claim_code": p.claim_code} for p in issued]}

    if catalog is not None:

        @admin.post("/catalog/import")
        async def import_products(request: Request, format: str | None = None, all_or_nothing: bool = False) -> dict[str, Any]:
            """Create or update products by SKU from a CSV or JSON body (docs/catalog.md); each bad row named with its field."""
            rows = await _file_rows(request, format, PRODUCT_COLUMNS)
            report = await run_in_threadpool(catalog.import_rows, rows, all_or_nothing)
            if not report.applied:
                raise HTTPException(422, {"message": "nothing applied: some rows are bad (all_or_nothing)", **report.as_dict()})
            return report.as_dict()

        @admin.get("/catalog/products")
        async def products() -> dict[str, Any]:
            """Every product, by SKU."""
            return {"products": [p.model_dump() for p in await run_in_threadpool(catalog.products)]}

    if fulfillers is not None:

        @admin.post("/fulfillers", status_code=201)
        async def add_fulfiller(body: FulfillerRequest) -> dict[str, Any]:
            """Register a fulfilment system; its webhook secret and API key are shown only in this answer."""
            try:
                creds = await run_in_threadpool(fulfillers.add, body.id, body.name, body.webhook_url, body.lead_time_days, body.sandbox, body.webhook_secret, body.api_key)
            except ValueError as exc:
                raise HTTPException(409 if "exists already" in str(exc) else 422, str(exc)) from None
            return {"id": creds.fulfiller_id, "webhook_secret": creds.webhook_secret, "api_key": creds.api_key}

        @admin.post("/fulfillers/import")
        async def import_fulfillers(request: Request, format: str | None = None, all_or_nothing: bool = False) -> dict[str, Any]:
            """Create or update fulfilment systems by id from a CSV or JSON body; the new ones' credentials come back once."""
            rows = await _file_rows(request, format, FULFILLER_COLUMNS)
            report, issued = await run_in_threadpool(fulfillers.import_rows, rows, all_or_nothing)
            if not report.applied:
                raise HTTPException(422, {"message": "nothing applied: some rows are bad (all_or_nothing)", **report.as_dict()})
            return report.as_dict() | {"credentials": [{"id": c.fulfiller_id, "webhook_secret": c.webhook_secret, "api_key": c.api_key} for c in issued]}

        @admin.get("/fulfillers")
        async def list_fulfillers() -> dict[str, Any]:
            """Every fulfilment system, without its secrets."""
            hidden = {"webhook_secret", "api_key_hash"}
            return {"fulfillers": [f.model_dump(exclude=hidden) for f in await run_in_threadpool(fulfillers.all)]}

    return admin
