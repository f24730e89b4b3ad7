"""The pure consent rule: the latest record per (device, scope) is in force, and none means not given."""

from __future__ import annotations

import pytest

from replenish.households import ConsentScope, in_force


def test_no_records_means_no_consent_is_given() -> None:
    assert in_force([]) == {}
    assert in_force([("printer-1", "telemetry", True)]).get(("printer-1", "auto_order"), False) is False


def test_the_latest_record_per_device_and_scope_wins() -> None:
    records = [
        ("printer-1", "auto_order", True),
        ("printer-1", "auto_order", False),  # withdrawn
    ]
    assert in_force(records) == {("printer-1", ConsentScope.AUTO_ORDER): False}
    assert in_force([*records, ("printer-1", "auto_order", True)]) == {("printer-1", ConsentScope.AUTO_ORDER): True}


def test_scopes_and_devices_are_independent() -> None:
    records = [
        ("printer-1", "telemetry", True),
        ("printer-1", "auto_order", True),
        ("fridge-1", "auto_order", True),
        ("printer-1", "auto_order", False),  # withdraws auto_order only, of printer-1 only
    ]
    assert in_force(records) == {
        ("printer-1", ConsentScope.TELEMETRY): True,
        ("printer-1", ConsentScope.AUTO_ORDER): False,
        ("fridge-1", ConsentScope.AUTO_ORDER): True,
    }


def test_an_unknown_scope_raises_value_error() -> None:
    with pytest.raises(ValueError):
        in_force([("printer-1", "telemetry", True), ("printer-1", "marketing", True)])
    with pytest.raises(ValueError):
        in_force([("printer-1", "Telemetry", True)])  # scopes are exact


def test_keys_compare_equal_to_plain_strings() -> None:
    got = in_force([("printer-1", "telemetry", True), ("printer-1", "auto_order", False)])
    assert got[("printer-1", "telemetry")] is True
    assert got[("printer-1", "auto_order")] is False
    assert set(got) == {("printer-1", "telemetry"), ("printer-1", "auto_order")}
    assert all(type(scope) is ConsentScope for _, scope in got)
    assert [s.value for s in ConsentScope] == ["telemetry", "auto_order"]
