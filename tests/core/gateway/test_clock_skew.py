"""Device clocks (SPEC 3: one outlier timestamp does not move a device's clock): known answers of DeviceClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.readings import CONFIRMATIONS, DeviceClock

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
DELAY = timedelta(seconds=0.4)  # network delay of a live message


def _live(clock: DeviceClock, true_at: datetime, skew: timedelta = timedelta(0)) -> datetime:
    """A live message sent at `true_at` by a device whose clock reads `skew` ahead; its stored time."""
    return clock.observe(true_at + skew, true_at + DELAY)


def test_one_message_from_the_future_never_moves_the_clock_and_is_held_at_its_arrival() -> None:
    clock = DeviceClock(None, None, None)
    for i in range(5):
        assert _live(clock, T0 + i * H) == T0 + i * H
    before = clock.clock_offset_s
    poisoned_at = T0 + 5 * H
    assert clock.observe(poisoned_at + timedelta(days=6), poisoned_at + DELAY) == poisoned_at + DELAY  # held at arrival
    assert clock.clock_offset_s is not None and before is not None and abs(clock.clock_offset_s - before) < 1
    for i in range(6, 30):  # every later, correct reading at its true time, not six days early
        assert _live(clock, T0 + i * H) == T0 + i * H


def test_a_clock_truly_ahead_is_corrected_once_messages_agree() -> None:
    clock = DeviceClock(None, None, None)
    ahead = timedelta(hours=2)
    stored = [_live(clock, T0 + i * H, ahead) for i in range(CONFIRMATIONS + 3)]
    assert all(abs(s - (T0 + i * H)) < timedelta(seconds=1) for i, s in enumerate(stored))


def test_a_new_devices_first_message_from_the_future_gives_way_to_the_next() -> None:
    clock = DeviceClock(None, None, None)
    clock.observe(T0 + timedelta(days=6), T0 + DELAY)
    for i in range(1, 10):
        assert _live(clock, T0 + i * H) == T0 + i * H
    assert clock.clock_offset_s is not None and abs(clock.clock_offset_s) < 120


def test_a_worker_restarted_from_the_stored_estimate_is_not_fooled_by_its_first_message() -> None:
    clock = DeviceClock(T0, 0.4, T0)  # as the database holds it
    assert clock.observe(T0 + H + timedelta(days=6), T0 + H + DELAY) == T0 + H + DELAY
    assert clock.clock_offset_s is not None and abs(clock.clock_offset_s - 0.4) < 60
    assert _live(clock, T0 + 2 * H) == T0 + 2 * H


def test_a_clock_reset_to_1970_is_corrected_at_once() -> None:
    clock = DeviceClock(None, None, None)
    for i in range(3):
        _live(clock, T0 + i * H)
    rebooted_at = T0 + 3 * H
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert clock.observe(epoch, rebooted_at + DELAY) == rebooted_at + DELAY  # older than any buffer: a reset
    assert clock.observe(epoch + H, rebooted_at + H + DELAY) == rebooted_at + H + DELAY


def test_a_burst_of_buffered_messages_keeps_a_clock_ahead_corrected() -> None:
    clock = DeviceClock(None, None, None)
    ahead = timedelta(hours=1)
    for i in range(4):
        _live(clock, T0 + i * H, ahead)
    back_at = T0 + 10 * H  # offline from T0 + 4 h; the device sends what it buffered
    stored = [clock.observe(T0 + i * H + ahead, back_at) for i in range(4, 10)]
    assert all(abs(s - (T0 + i * H)) < timedelta(seconds=1) for s, i in zip(stored, range(4, 10), strict=True))  # within the live delay
