"""Households: accounts, the devices they claimed, and their consent per device and scope."""

from .accounts import Households
from .consent import CONSENT_WORDING, CONSENT_WORDING_VERSION, Consents, ConsentScope, in_force

__all__ = ["CONSENT_WORDING", "CONSENT_WORDING_VERSION", "ConsentScope", "Consents", "Households", "in_force"]
