"""Households: accounts with argon2 passwords, and the devices they claimed with the code printed on each."""

from __future__ import annotations

import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gateway import Clock, verify_secret

from ..provisioning import normalise_claim_code
from ..storage import Claim, Household, ProvisionedDevice

__all__ = ["Households"]

MAX_BUDGET_MINOR = 100_000_00  # 100,000 a month in the currency's major units: beyond it, a typo
MIN_CANCEL_WINDOW_H = 1.0  # an hour to notice an order and cancel it, at the least
MAX_CANCEL_WINDOW_H = 168.0  # a week: longer, and the hold eats the lead time the policy plans with


class Households:
    """Accounts and claims."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
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

    def update_settings(self, household_id: int, monthly_budget_cents: int, cancel_window_hours: float | None) -> Household:
        """Set the monthly budget (minor units of its currency) and how long `auto` orders are held (None: the service's default)."""
        if not 0 <= monthly_budget_cents <= MAX_BUDGET_MINOR:
            raise ValueError(f"the monthly budget is between 0 and {MAX_BUDGET_MINOR // 100:,}")
        if cancel_window_hours is not None and not MIN_CANCEL_WINDOW_H <= cancel_window_hours <= MAX_CANCEL_WINDOW_H:
            raise ValueError(f"the cancel window is between {MIN_CANCEL_WINDOW_H:g} and {MAX_CANCEL_WINDOW_H:g} hours")
        with Session(self.engine) as s:
            household = s.get(Household, household_id)
            if household is None:
                raise LookupError("no such household")
            household.monthly_budget_cents, household.cancel_window_hours = monthly_budget_cents, cancel_window_hours
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
