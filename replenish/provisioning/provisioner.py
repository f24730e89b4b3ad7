"""Device provisioning: per-device MQTT credentials installed in the broker, and a claim code stored hashed.

The maker's line (or an operator) provisions a device once: it gets a random MQTT password (kept
only as a hash, and installed in Mosquitto's dynamic security or the embedded broker) and a claim
code printed on the device. The household types the code to claim it (SPEC 4); the code never
travels over MQTT.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway import BrokerAccess, Clock, DeviceSecret, GatewayStorage, hash_secret, is_service_name, new_secret, valid_device_id

from ..storage import ProvisionedDevice

__all__ = ["CLAIM_ALPHABET", "Provisioned", "Provisioner", "normalise_claim_code", "numbered_ids"]

# Crockford's base32: no I, L, O or U to misread on a printed label. 16 characters = 80 bits, so a
# salted SHA-256 is out of reach of guessing, and 10,000 devices provision in well under a second.
CLAIM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CLAIM_LENGTH = 16
_MAX_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What a provisioned device must be given, once: its MQTT password and its claim code."""

    device_id: str
    password: str
    claim_code: str


def normalise_claim_code(code: str) -> str:
    """A typed claim code as stored: upper case, without separators, with look-alikes mapped."""
    cleaned = code.strip().upper().replace("-", "").replace(" ", "")
    return cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def numbered_ids(prefix: str, count: int, start: int = 0) -> list[str]:
    """`prefix-00000`, `prefix-00001`, ...: ids for a batch off the line."""
    return [f"{prefix}-{i:05d}" for i in range(start, start + count)]


def _new_claim_code() -> str:
    raw = "".join(secrets.choice(CLAIM_ALPHABET) for _ in range(_CLAIM_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _CLAIM_LENGTH, 4))


class Provisioner:
    """Issues device credentials and claim codes, and installs the credentials in the broker."""

    def __init__(self, engine: Engine, gateway: GatewayStorage, access: BrokerAccess, clock: Clock, reserved: Collection[str]) -> None:
        self.engine = engine
        self.gateway = gateway
        self.access = access
        self.clock = clock
        self.reserved = frozenset(reserved)  # the broker's own accounts and client ids (service, admin, workers): never a device

    def provision(self, device_ids: Sequence[str]) -> list[Provisioned]:
        """New credentials and claim codes for these devices (re-provisioning replaces both)."""
        ids = list(dict.fromkeys(device_ids))
        if not ids or len(ids) > _MAX_BATCH:
            raise ValueError(f"provision 1-{_MAX_BATCH} devices at a time")
        bad = [d for d in ids if not valid_device_id(d) or d in self.reserved or is_service_name(d)]
        if bad:
            raise ValueError(
                f"invalid device id(s): {', '.join(map(repr, bad[:5]))} "
                "(1-64 of [A-Za-z0-9_-]; not the broker's own accounts or client ids, nor starting with 'replenish-')"
            )
        issued = [Provisioned(d, new_secret(), _new_claim_code()) for d in ids]
        now = self.clock.now()
        for d in ids:
            self.gateway.registry.register(d)
        # The broker learns the passwords first: a failure there leaves no claim code for a device
        # that cannot connect, and a failure after it is mended by provisioning again.
        self.access.grant_devices([DeviceSecret(p.device_id, p.password) for p in issued])
        with Session(self.engine) as s:
            for p in issued:
                row = s.get(ProvisionedDevice, p.device_id) or ProvisionedDevice(device_id=p.device_id, claim_code_hash="", provisioned_at=now)
                row.claim_code_hash, row.provisioned_at = hash_secret(normalise_claim_code(p.claim_code)), now
                s.add(row)
            s.commit()
        return issued

    def revoke(self, device_id: str) -> None:
        """Withdraw a device's credentials, e.g. when it is stolen or retired."""
        self.access.revoke_device(device_id)
