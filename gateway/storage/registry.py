"""The device registry: devices and their slots as their births announce them, online status, consent to store."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..protocol import Birth
from .tables import GwDevice, GwSlot

__all__ = ["DeviceRegistry"]


class DeviceRegistry:
    """Reads and writes gw_devices and the announced half of gw_slots."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_birth(self, device_id: str, birth: Birth, now: datetime) -> None:
        """Create or update a device and its slots from its birth message; keeps slot state."""
        with Session(self.engine) as s:
            device = s.get(GwDevice, device_id) or GwDevice(device_id=device_id)
            device.model, device.kind, device.firmware, device.boot = birth.model, birth.kind, birth.firmware, birth.boot
            device.birth_at = device.last_seen_at = now
            s.add(device)
            for spec in birth.slots:
                slot = s.get(GwSlot, (device_id, spec.slot_id)) or GwSlot(
                    device_id=device_id, slot_id=spec.slot_id, consumable=spec.consumable, unit=spec.unit, capacity=spec.capacity
                )
                slot.consumable, slot.unit, slot.capacity, slot.fills_up = spec.consumable, spec.unit, spec.capacity, spec.fills_up
                s.add(slot)
            s.commit()

    def record_status(self, device_id: str, online: bool, now: datetime) -> None:
        """Remember whether a device is online."""
        with Session(self.engine) as s:
            device = s.get(GwDevice, device_id)
            if device is None:
                return
            device.online, device.last_seen_at = online, now
            s.add(device)
            s.commit()

    def register(self, device_id: str) -> None:
        """Make sure the registry knows a device, before or after its first birth message."""
        with Session(self.engine) as s:
            if s.get(GwDevice, device_id) is None:
                s.add(GwDevice(device_id=device_id))
                s.commit()

    def set_store_readings(self, device_id: str, allowed: bool) -> None:
        """Switch storage of a device's readings on or off (the household's telemetry consent)."""
        with Session(self.engine) as s:
            device = s.get(GwDevice, device_id) or GwDevice(device_id=device_id)
            device.store_readings = allowed
            s.add(device)
            s.commit()

    def devices(self, device_ids: Iterable[str] | None = None) -> list[GwDevice]:
        """Devices, all or the given ones."""
        with Session(self.engine) as s:
            q = select(GwDevice)
            if device_ids is not None:
                q = q.where(GwDevice.device_id.in_(list(device_ids)))  # type: ignore[attr-defined]
            return list(s.exec(q.order_by(GwDevice.device_id)))

    def models(self, device_ids: Iterable[str] | None = None) -> dict[str, str]:
        """The model of each device (all, or the given ones) that has announced one."""
        return {d.device_id: d.model for d in self.devices(device_ids) if d.model}

    def kinds(self) -> dict[str, str]:
        """The kind of every device that has announced one (two columns, for a fleet of any size)."""
        with Session(self.engine) as s:
            rows = s.exec(select(GwDevice.device_id, GwDevice.kind).where(GwDevice.kind.is_not(None)))  # type: ignore[union-attr]
            return {device_id: kind for device_id, kind in rows if kind}

    def slots(self, device_ids: Iterable[str]) -> list[GwSlot]:
        """Slots of the given devices."""
        with Session(self.engine) as s:
            q = select(GwSlot).where(GwSlot.device_id.in_(list(device_ids)))  # type: ignore[attr-defined]
            return list(s.exec(q.order_by(GwSlot.device_id, GwSlot.slot_id)))
