"""The published JSON Schema of each device message (docs/protocol/*.json link to these files)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator

__all__ = ["SCHEMAS", "validator"]

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def validator(kind: str) -> Draft202012Validator:
    """The JSON Schema validator of one message kind (birth, telemetry, status, orders)."""
    return Draft202012Validator(json.loads((SCHEMAS / f"{kind}.json").read_text()))
