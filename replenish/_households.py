"""Households: accounts with argon2 passwords, device claims and per-device consent with an audit trail."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gateway import Clock, GatewayStore, verify_secret

from ._models import Claim, ConsentRecord, Household, ProvisionedDevice
from ._provisioning import normalise_claim_code

__all__ = ["CONSENT_WORDING_VERSION", "Households", "Scope"]

Scope = Literal["telemetry", "auto_order"]
SCOPES: tuple[Scope, ...] = ("telemetry", "auto_order")
CONSENT_WORDING_VERSION = "2026-11-v1"  # bump whenever the consent text on the page changes


class Households:
    """Accounts, claims and consent."""

    def __init__(self, engine: Engine, store: GatewayStore, clock: Clock) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock
        self._hasher = PasswordHasher()

    def create(
        self,
        email: str,
        name: str,
        password: str,
        monthly_budget_cents: int = 5000,
        currency: str = "EUR",
        address: dict[str, Any] | None = None,
    ) -> Household:
        """Open an account."""
        if len(password) < 8:
            raise ValueError("a password needs at least 8 characters")
        household = Household(
            email=email.strip().lower(),
            name=name,
            password_hash=self._hasher.hash(password),
            pseudonym="hh_" + secrets.token_hex(12),
            monthly_budget_cents=monthly_budget_cents,
            currency=currency,
            address=address or {},
            created_at=self.clock.now(),
        )
        with Session(self.engine) as s:
            s.add(household)
            s.commit()
            s.refresh(household)
        return household

    def by_email(self, email: str) -> Household | None:
        """The household with this login, if any."""
        with Session(self.engine) as s:
            return s.exec(select(Household).where(Household.email == email.strip().lower())).first()

    def get(self, household_id: int) -> Household | None:
        """One household."""
        with Session(self.engine) as s:
            return s.get(Household, household_id)

    def authenticate(self, email: str, password: str) -> Household | None:
        """The household when the password matches, else None."""
        household = self.by_email(email)
        if household is None:
            self._hasher.hash(password)  # same work either way: no user enumeration by timing
            return None
        try:
            self._hasher.verify(household.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return household

    def claim(self, household_id: int, device_id: str, claim_code: str) -> None:
        """Attach a device to a household, given the claim code printed on it (SPEC 4)."""
        with Session(self.engine) as s:
            provisioned = s.get(ProvisionedDevice, device_id)
            # One answer for an unknown device and a wrong code: ids cannot be probed.
            if provisioned is None or not verify_secret(normalise_claim_code(claim_code), provisioned.claim_code_hash):
                raise PermissionError("no device with this id and claim code")
            existing = s.get(Claim, device_id)
            if existing is not None and existing.household_id != household_id:
                raise PermissionError(f"device {device_id} belongs to another household")
            if existing is not None:
                return  # already ours: a second submit of the form changes nothing
            s.add(Claim(device_id=device_id, household_id=household_id, claimed_at=self.clock.now()))
            s.commit()

    def device_ids(self, household_id: int) -> list[str]:
        """The household's devices."""
        with Session(self.engine) as s:
            return list(s.exec(select(Claim.device_id).where(Claim.household_id == household_id).order_by(col(Claim.device_id))))

    def owner(self, device_id: str) -> int | None:
        """The household that claimed a device."""
        return self.owners([device_id]).get(device_id)

    def owners(self, device_ids: list[str]) -> dict[str, int]:
        """The household of each claimed device among these, in one query."""
        if not device_ids:
            return {}
        with Session(self.engine) as s:
            q = select(Claim.device_id, Claim.household_id).where(col(Claim.device_id).in_(device_ids))
            return dict(s.exec(q).all())

    def set_consent(self, household_id: int, device_id: str, scope: Scope, granted: bool, actor: str) -> datetime:
        """Grant or withdraw one scope; records who, when and which wording; applies at once."""
        if scope not in SCOPES:
            raise ValueError(f"unknown consent scope {scope!r}")
        if self.owner(device_id) != household_id:
            raise PermissionError(f"device {device_id} is not this household's")
        now = self.clock.now()
        with Session(self.engine) as s:
            s.add(
                ConsentRecord(
                    household_id=household_id,
                    device_id=device_id,
                    scope=scope,
                    granted=granted,
                    actor=actor,
                    wording_version=CONSENT_WORDING_VERSION,
                    at=now,
                )
            )
            s.commit()
        if scope == "telemetry":
            self.store.set_store_readings(device_id, granted)
        return now

    def consents(self, device_ids: list[str]) -> dict[tuple[str, str], bool]:
        """The consent in force per (device, scope): the latest record wins; none means not given."""
        out: dict[tuple[str, str], bool] = {}
        if not device_ids:
            return out
        with Session(self.engine) as s:
            q = select(ConsentRecord).where(col(ConsentRecord.device_id).in_(device_ids)).order_by(col(ConsentRecord.id))
            for rec in s.exec(q):
                out[(rec.device_id, rec.scope)] = rec.granted
        return out

    def consent_history(self, household_id: int) -> list[ConsentRecord]:
        """Every grant and withdrawal of a household, oldest first."""
        with Session(self.engine) as s:
            q = select(ConsentRecord).where(ConsentRecord.household_id == household_id).order_by(col(ConsentRecord.id))
            return list(s.exec(q))
