"""The operator API (`/api/admin/v1`, behind REPLENISH_ADMIN_TOKEN): device provisioning."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, model_validator

from ..provisioning import Provisioner, numbered_ids
from .auth import operator_check

__all__ = ["ProvisionRequest", "admin_router"]

_MAX_DEVICES = 10_000  # a batch off the line; the provisioner takes no more at a time


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


def admin_router(provisioner: Provisioner | None, admin_token: str) -> APIRouter:
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

    return admin
