"""One simulated device as a pure, seeded state machine: `advance(now)` returns what it would publish.

Time is simulated UTC epoch seconds; nothing here reads a clock or opens a socket. Events in
order: sessions of use (none while the household is away), periodic reports (buffered while
offline, published as a burst on reconnect), offline spells, reboots, shopping trips and
purchases elsewhere. `on_orders` installs delivered units.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from datetime import UTC, datetime
from typing import Any

from ._kinds import Kind, Reading
from ._truth import Message, Quirks, Refill, Truth, rfc3339, to_datetime
from ._usage import DAY, HOUR, Household, away_periods, make_household, poisson

__all__ = ["IN_FLIGHT", "SimDevice"]

INF = math.inf
IN_FLIGHT = frozenset(("awaiting_approval", "held", "released", "accepted", "shipped"))
LOW = 0.2  # where a household starts to think about buying elsewhere (assumption; §1c: a 20 % low threshold)
WAIT_FOR_ORDER_DAYS = 14.0  # assumption: a household out of stock waits this long for an order in flight
BOOT_S = 30.0


class SimDevice:
    """A device's state and behaviour; build it with `make_device`."""

    def __init__(
        self, kind: Kind, device_id: str, seed: int | str, start: datetime, *, quirks: Quirks, interval_s: float,
        household: Household | None = None, start_levels: dict[str, float] | None = None, record: bool = False,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.kind, self.device_id, self.quirks, self.interval_s = kind, device_id, quirks, interval_s
        self.rng = rng = random.Random(f"{seed}:{device_id}:{kind.kind}")
        self.household = household or make_household(random.Random(f"{seed}:{device_id}:household"), quirks.p_away)
        self.params = kind.params(rng, self.household) | (params or {})
        self.slots = kind.slots(self.params)
        self.names = tuple(s.slot for s in self.slots)
        self.cap = [float(s.capacity) for s in self.slots]
        self.fills = [s.fills_up for s in self.slots]
        self.t0 = self.t = start.timestamp()
        self.levels = [c * (rng.uniform(0.0, 0.7) if f else rng.uniform(0.3, 1.0)) for c, f in zip(self.cap, self.fills, strict=True)]
        for name, value in (start_levels or {}).items():
            self.levels[self.names.index(name)] = float(value)
        self.seq, self.online, self.record = 0, True, record
        self.boot = 0  # a boot counter kept in flash (protocol.md, `boot`): one more at each reboot
        self.noisy = kind.noisy and quirks.quantise
        self.p_unknown = quirks.p_unknown * len(self.slots)  # per message: one slot's reading is a sentinel
        self._key: list[float] = []
        self._report: dict[str, Reading] = {}
        self.next_tick = self.t + rng.uniform(0.0, interval_s)
        self.buffer: deque[dict[str, Any]] = deque(maxlen=max(1, int(quirks.buffer_days * DAY / interval_s)))
        self.events: list[dict[str, Any]] = []
        # Use: sessions of the day being consumed, and the start of the next day to draw.
        self.off_s = self.household.utc_offset_h * HOUR
        self.day = math.floor((self.t + self.off_s) / DAY) * DAY - self.off_s
        self.queue: deque[float] = deque()
        self.last_use = self.t - rng.uniform(0.0, 2 * DAY)
        self.away: list[tuple[float, float]] = []
        self.away_year, self.away_i = to_datetime(self.t).year - 1, 0
        self._plan_away(self.t)
        # Connectivity and clock.
        self.next_offline = self._after(quirks.p_offline)
        self.offline_until = INF
        self.next_reboot = self._after(quirks.p_reboot)
        self.skew = 0.0
        if rng.random() < quirks.p_skew:
            self.skew = math.copysign(math.exp(rng.uniform(0.0, math.log(max(quirks.max_skew_h * HOUR, 1.0)))), rng.random() - 0.5)
        self.drift = rng.gauss(0.0, quirks.drift_ppm) * 1e-6
        self.reset_at, self.reset_until = 0.0, -INF
        # Purchases elsewhere and orders.
        self.next_restock = self._after(kind.restock_per_week / 7.0)
        self.elsewhere: list[float] = [INF] * len(self.slots)
        self.low_seen = [self._low(i) for i in range(len(self.slots))]
        self.in_flight: dict[int, str] = {}
        self.seen_orders: set[str] = set()
        self.pending_installs: list[int] = []
        # Ground truth.
        self.used = [0.0] * len(self.slots)
        self.unmet = [0.0] * len(self.slots)
        self.empty_at: list[list[float]] = [[] for _ in self.slots]
        self.refills: list[Refill] = []
        self.offline_spells: list[tuple[float, float]] = []
        self.reboots: list[float] = []
        self.sessions, self.activity = 0, 0.0
        self.history: list[tuple[float, tuple[float, ...]]] = []
        self.started = False

    # -- messages ----------------------------------------------------------------------------

    def birth(self) -> dict[str, Any]:
        """The retained birth payload."""
        return {
            "v": 1, "device": self.device_id, "boot": self.boot, "model": self.kind.model, "kind": self.kind.kind, "firmware": "sim-2.0",
            "slots": [s.birth() for s in self.slots],
        }

    def status(self, state: str) -> dict[str, Any]:
        """A status payload (`offline` is also the last will)."""
        return {"v": 1, "device": self.device_id, "state": state}

    def device_time(self, t: float) -> float:
        """What the device's clock reads at true time `t`: offset, drift, or a 1970 restart after a reboot."""
        if t < self.reset_until:
            return t - self.reset_at + BOOT_S
        return t + self.skew + self.drift * (t - self.t0)

    def reading(self, i: int) -> Reading:
        """What the device reports now for slot `i` (quantised and noisy unless `quirks.quantise` is off)."""
        if self.quirks.quantise:
            return self.kind.report(i, self.levels[i], self.rng, self.params)
        return self.kind.exact(i, self.levels[i], self.params)

    def telemetry(self, t: float) -> dict[str, Any]:
        """A telemetry payload at true time `t` (advances `seq`; carries pending events)."""
        if self.noisy or self.levels != self._key:
            self._key = list(self.levels)
            self._report = {name: self.reading(i) for i, name in enumerate(self.names)}
        levels = dict(self._report)
        if self.p_unknown and self.rng.random() < self.p_unknown:
            levels[self.rng.choice(self.names)] = None if self.rng.random() < 0.5 else "unknown"
        # Each report carries its boot: one buffered across a reboot keeps the boot it was made in.
        doc: dict[str, Any] = {"v": 1, "device": self.device_id, "boot": self.boot, "seq": self.seq, "ts": rfc3339(self.device_time(t)), "levels": levels}
        self.seq += 1
        if self.events:
            doc["events"], self.events = self.events, []
        if self.record:
            self.history.append((t, tuple(self.levels)))
        return doc

    def _emit(self, out: list[Message], t: float) -> None:
        doc = self.telemetry(t)
        if self.online:
            out.append(Message("telemetry", doc, t))
        else:
            self.buffer.append(doc)

    # -- simulation --------------------------------------------------------------------------

    def advance(self, now: datetime | float) -> list[Message]:
        """Simulate up to `now` and return the messages published meanwhile, in order."""
        end = now if isinstance(now, float) else now.timestamp()
        out: list[Message] = []
        if not self.started:
            self.started = True
            out += [Message("birth", self.birth(), self.t, retain=True), Message("status", self.status("online"), self.t, retain=True)]
        while True:
            t_use = self._next_use(end)
            t_conn = self.next_offline if self.online else self.offline_until
            t_else = min(self.elsewhere) if self.elsewhere else INF
            t = min(t_use, self.next_tick, t_conn, self.next_reboot, self.next_restock, t_else)
            if t > end:
                break
            self.t = t
            if t == self.next_tick:
                self.next_tick += self.interval_s
                self._install_pending(t)
                self._emit(out, t)
            elif t == t_use:
                self.queue.popleft()
                if not self._is_away(t):
                    self._use(t)
            elif t == t_conn:
                self._connectivity(out, t)
            elif t == self.next_reboot:
                self._reboot(out, t)
            elif t == self.next_restock:
                self.next_restock = t + self._gap(self.kind.restock_per_week / 7.0)
                if not self._is_away(t):
                    for i in range(len(self.slots)):
                        if self.levels[i] < self.kind.restock_below * self.cap[i]:
                            self._refill(i, t, "elsewhere")
            else:
                self._buy_elsewhere(self.elsewhere.index(t_else), t)
        self.t = max(self.t, end)
        return out

    def next_message_at(self) -> float:
        """When `advance` will next have something to publish (epoch seconds)."""
        return min(self.next_tick, self.next_offline if self.online else self.offline_until, self.next_reboot)

    def _next_use(self, end: float) -> float:
        while not self.queue:
            if self.day > end:
                return INF
            self._draw_day()
        return self.queue[0]

    def _draw_day(self) -> None:
        kind, rng, day = self.kind, self.rng, self.day
        self.day += DAY
        weekday = (int((day + self.off_s) // DAY) + 3) % 7  # 1970-01-01 was a Thursday
        mean = self.params["sessions_per_day"] * kind.rhythm.day_factor(rng, weekday) / kind.rhythm.mean_factor()
        times = sorted(day + kind.rhythm.hour_of_day(rng) for _ in range(poisson(rng, mean)))
        self.queue.extend(x for x in times if x >= self.t)

    def _use(self, t: float) -> None:
        session = self.kind.session(self.rng, self.params, t - self.last_use)
        self.last_use = t
        self.sessions += 1
        self.activity += session.activity
        for i, amount in enumerate(session.amounts):
            if not amount:
                continue
            level, cap = self.levels[i], self.cap[i]
            room = cap - level if self.fills[i] else level
            took = min(room, amount)
            self.used[i] += took
            self.unmet[i] += amount - took
            self.levels[i] = level + took if self.fills[i] else level - took
            if took and took == room:
                self.empty_at[i].append(t)
                if self.elsewhere[i] == INF:
                    self.elsewhere[i] = t + self.rng.uniform(*self.kind.elsewhere_days) * DAY
            elif not self.low_seen[i] and self._low(i):
                self.low_seen[i] = True
                if self.elsewhere[i] == INF and self.rng.random() < self.quirks.p_elsewhere:
                    self.elsewhere[i] = t + self.rng.uniform(0.0, 3.0) * DAY

    def _low(self, i: int) -> bool:
        frac = self.levels[i] / self.cap[i]
        return (1.0 - frac if self.fills[i] else frac) < LOW

    def _buy_elsewhere(self, i: int, t: float) -> None:
        self.elsewhere[i] = INF
        if self._is_away(t):
            self.elsewhere[i] = self.away[self.away_i][1] + self.rng.uniform(0.0, 1.0) * DAY
        elif i in self.in_flight and (not self.empty_at[i] or t - self.empty_at[i][-1] < WAIT_FOR_ORDER_DAYS * DAY):
            self.elsewhere[i] = t + DAY  # an order is on its way: wait for it a while
        else:
            self._refill(i, t, "elsewhere")

    def _refill(self, i: int, t: float, source: str) -> None:
        self.levels[i] = 0.0 if self.fills[i] else self.cap[i]
        self.elsewhere[i], self.low_seen[i] = INF, False
        reported = source == "order" or self.rng.random() < self.kind.p_elsewhere_event
        if reported:
            self.events.append({"type": "replaced", "slot": self.names[i], "level": self.reading(i) if self.quirks.quantise else self.kind.exact(i, self.levels[i], self.params)})
        self.refills.append(Refill(to_datetime(t), self.names[i], source, reported))

    def _install_pending(self, t: float) -> None:
        if self.pending_installs and not self._is_away(t):
            for i in self.pending_installs:
                self._refill(i, t, "order")
            self.pending_installs = []

    def _connectivity(self, out: list[Message], t: float) -> None:
        if self.online:
            self.online = False
            median, sigma = self.quirks.offline_hours
            self.offline_until = t + median * HOUR * math.exp(self.rng.gauss(0.0, sigma))
            self.offline_spells.append((t, self.offline_until))
            out.append(Message("status", self.status("offline"), t, retain=True, will=True))
        else:
            self.online, self.offline_until = True, INF
            self.next_offline = t + self._gap(self.quirks.p_offline)
            out.append(Message("status", self.status("online"), t, retain=True))
            out += [Message("telemetry", doc, t) for doc in self.buffer]
            self.buffer.clear()

    def _reboot(self, out: list[Message], t: float) -> None:
        self.next_reboot = t + self._gap(self.quirks.p_reboot)
        self.reboots.append(t)
        self.seq = 0
        self.boot += 1
        if self.rng.random() < self.quirks.p_clock_reset:
            self.reset_at, self.reset_until = t, t + self.rng.uniform(1.0, 6.0) * HOUR
        if self.online:
            out += [
                Message("status", self.status("offline"), t, retain=True, will=True),
                Message("birth", self.birth(), t, retain=True),
                Message("status", self.status("online"), t, retain=True),
            ]

    def _after(self, per_day: float) -> float:
        return self.t + self._gap(per_day)

    def _gap(self, per_day: float) -> float:
        return self.rng.expovariate(per_day / DAY) if per_day > 0 else INF

    def _plan_away(self, t: float) -> None:
        year = to_datetime(t).year
        while self.away_year < year + 1:
            self.away_year += 1
            for s, e in away_periods(self.household, self.away_year):
                if self.away and s <= self.away[-1][1]:
                    self.away[-1] = (self.away[-1][0], max(e, self.away[-1][1]))
                else:
                    self.away.append((s, e))
        self.away_horizon = datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()

    def _is_away(self, t: float) -> bool:
        """Whether the household is away at `t` (calls come in time order)."""
        if t >= self.away_horizon:
            self._plan_away(t)
        away = self.away
        while self.away_i < len(away) and away[self.away_i][1] <= t:
            self.away_i += 1
        return self.away_i < len(away) and away[self.away_i][0] <= t

    # -- orders and truth --------------------------------------------------------------------

    def on_orders(self, payload: bytes | str | dict[str, Any], now: datetime | float) -> list[Message]:
        """React to the retained `orders` message: track orders in flight, install delivered units."""
        out = self.advance(now)
        try:
            doc = payload if isinstance(payload, dict) else json.loads(payload)
            slots = doc.get("slots")
        except (ValueError, AttributeError):
            return out
        installed = False
        for name, info in (slots if isinstance(slots, dict) else {}).items():
            if name not in self.names or not isinstance(info, dict):
                continue
            i, status, order_id = self.names.index(name), info.get("status"), str(info.get("order_id"))
            if status in IN_FLIGHT:
                self.in_flight[i] = order_id
            elif status == "delivered" and order_id not in self.seen_orders:
                self.seen_orders.add(order_id)
                self.in_flight.pop(i, None)
                if self._is_away(self.t):
                    self.pending_installs.append(i)  # nobody home: installed on return
                else:
                    self._refill(i, self.t, "order")
                    installed = True
            elif self.in_flight.get(i) == order_id:
                self.in_flight.pop(i)
        if installed:
            self._emit(out, self.t)
        return out

    def truth(self) -> Truth:
        """The ground truth up to the last `advance`."""
        dt = to_datetime
        return Truth(
            now=dt(self.t),
            levels=dict(zip(self.names, self.levels, strict=True)),
            capacity=dict(zip(self.names, self.cap, strict=True)),
            used=dict(zip(self.names, self.used, strict=True)),
            unmet=dict(zip(self.names, self.unmet, strict=True)),
            empty_at={n: tuple(dt(x) for x in e) for n, e in zip(self.names, self.empty_at, strict=True)},
            refills=tuple(self.refills),
            away=tuple((dt(s), dt(e)) for s, e in self.away if s <= self.t),
            offline=tuple((dt(s), dt(e)) for s, e in self.offline_spells),
            reboots=tuple(dt(x) for x in self.reboots),
            sessions=self.sessions,
            activity=self.activity,
            clock_offset_s=self.device_time(self.t) - self.t,
            history=tuple((dt(t), dict(zip(self.names, lv, strict=True))) for t, lv in self.history),
        )
