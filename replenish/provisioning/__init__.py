"""Provisioning: per-device MQTT credentials installed in the broker, and claim codes printed on the devices."""

from .provisioner import CLAIM_ALPHABET, Provisioned, Provisioner, normalise_claim_code, numbered_ids

__all__ = ["CLAIM_ALPHABET", "Provisioned", "Provisioner", "normalise_claim_code", "numbered_ids"]
