"""A cancel ends the order, not the need; consent is re-checked at approval; one open order per slot (issue 11, items 1 and 5).

Through the service's own planner, actions and fulfilment events on the layer's database, with the
slot's forecast written as the forecaster would store it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from markupsafe import escape
from sqlmodel import Session

from gateway import Birth, SlotSpec, UTCDateTime, make_engine
from gateway.forecasting import ForecastMethod
from gateway.storage import GwForecast, GwSlot
from replenish.bootstrap import Service
from replenish.households import CONSENT_WORDING, CONSENT_WORDING_VERSION, ConsentScope
from replenish.ordering import NOT_NOW, Decision, EndedBy, Offer, OrderStatus, Placement, SlotChoice, SlotMode, need_key
from replenish.settings import Settings
from replenish.storage import ConsentRecord, Household, Order, Product, SlotSetting
from replenish.web import Pages, create_app
from tests.helpers import migrate_to

NOW = datetime(2026, 11, 2, 8, tzinfo=UTC)
DAY = timedelta(days=1)
DEVICE, SLOT = "need-printer", "black"
NEED = need_key(DEVICE, SLOT, None)
PASSWORD = "long enough password"


@dataclass
class World:
    """A household with one printer, both consents, a product chosen for its black slot, and a forecast due."""

    service: Service
    household: int
    email: str

    def forecast(self, level: float, now: datetime = NOW) -> None:
        """The slot's forecast, as the forecaster stores it: running out within two days."""
        row = GwForecast(
            device_id=DEVICE, slot_id=SLOT, computed_at=now, level_now=level, rate_per_day=0.05,
            empty_p10=now + 2 * DAY, empty_p50=now + 3 * DAY, empty_p90=now + 5 * DAY, confidence=0.8, n_used=48,
            explanation={"method": ForecastMethod.LEVEL.value, "step": 0.1},
        )  # fmt: skip
        self.service.gateway.forecasts.write([row], [])

    def plan(self, now: datetime) -> list[Order]:
        """One planning pass; the orders it placed."""
        placed = self.service.placer.plan(now).placed
        return [o for o in (self.service.queries.get(i) for i in placed) if o is not None]

    def orders(self) -> list[Order]:
        with Session(self.service.engine) as s:
            return list(s.exec(sa.select(Order).where(Order.device_id == DEVICE).order_by(Order.created_at)).scalars())  # type: ignore[call-overload]


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    service = Service(Settings(env="test", database_url=db_url, clock_start=NOW, clock_speed=1.0, mqtt_port=0))
    service.migrate()
    try:
        assert service.provisioner is not None
        email = f"n-{uuid.uuid4().hex[:6]}@example.org"
        hh = service.households.create(email, "N", PASSWORD, address={"city": "Utrecht"})
        assert hh.id is not None
        (issued,) = service.provisioner.provision([DEVICE])
        service.gateway.registry.record_birth(DEVICE, Birth("hp-67", "printer.inkjet", "1", (SlotSpec(SLOT, "ink.black", "percent", 100.0),)), NOW)
        service.households.claim(hh.id, DEVICE, issued.claim_code)
        for scope in ConsentScope:
            service.consents.set(hh.id, DEVICE, scope, True, "n@example.org")
        service.fulfillers.add("shop", "Shop", "http://127.0.0.1:9/hook", lead_time_days=2)
        service.catalog.add_product(Product(sku="INK-BK", name="Ink", consumable="ink.black", models=["hp-67"], unit_price_cents=2500, fulfiller_id="shop"))
        service.catalog.choose(hh.id, DEVICE, SLOT, "INK-BK")
        w = World(service, hh.id, email)
        w.forecast(0.2)
        yield w
    finally:
        service.stop()


def test_a_cancel_holds_the_slot_for_not_now_then_the_need_is_ordered_again_once(world: World) -> None:
    (first,) = world.plan(NOW)
    assert (first.idempotency_key, first.need, first.status) == (NEED, NEED, OrderStatus.HELD)
    world.service.actions.cancel(world.household, first.id, NOW + timedelta(hours=1))
    with Session(world.service.engine) as s:
        setting = s.get(SlotSetting, (DEVICE, SLOT))
        assert setting is not None
        assert (setting.not_before, setting.not_above_level) == (NOW + timedelta(hours=1) + NOT_NOW, pytest.approx(0.1))
    assert world.plan(NOW + 2 * DAY) == [], "not now: nothing for three days while the level holds"
    (second,) = world.plan(NOW + timedelta(hours=1) + NOT_NOW)
    assert (second.idempotency_key, second.need) == (NEED + "#2", NEED), "the need's second attempt, not a new need"
    assert world.plan(NOW + 4 * DAY) == [], "one open order per slot"
    assert [o.ended_by for o in world.orders()] == [EndedBy.HOUSEHOLD, None]


def test_a_level_another_step_down_ends_not_now_early(world: World) -> None:
    (first,) = world.plan(NOW)
    world.service.actions.cancel(world.household, first.id, NOW)
    world.forecast(0.15, NOW + DAY)
    assert world.plan(NOW + DAY) == [], "half a step down is not another step"
    world.forecast(0.1, NOW + DAY)
    (second,) = world.plan(NOW + DAY)
    assert second.idempotency_key == NEED + "#2"


def test_the_household_ends_or_moves_not_now_itself(world: World) -> None:
    (first,) = world.plan(NOW)
    world.service.actions.cancel(world.household, first.id, NOW)
    with pytest.raises(LookupError):
        world.service.actions.set_not_now(world.household + 1, DEVICE, SLOT, None)
    world.service.actions.set_not_now(world.household, DEVICE, SLOT, None)
    (second,) = world.plan(NOW)
    assert second.idempotency_key == NEED + "#2"


def test_out_of_stock_ends_the_order_and_without_a_substitute_the_product_is_not_ordered_again(world: World) -> None:
    world.service.catalog.choose(world.household, DEVICE, SLOT, "INK-BK", mode="approve")
    (first,) = world.plan(NOW)
    world.service.actions.approve(world.household, first.id, NOW)
    order, changed = world.service.events.apply("shop", first.id, {"type": "out_of_stock", "event_id": "oos-1"}, NOW)
    assert changed and (order.status, order.ended_by) == (OrderStatus.OUT_OF_STOCK, EndedBy.FULFILMENT)
    assert world.plan(NOW + timedelta(hours=1)) == [], "the shop is out of the only product chosen: the household is told, nothing is ordered"


def test_out_of_stock_moves_the_need_to_the_households_next_substitute_once(world: World) -> None:
    service = world.service
    service.catalog.add_product(Product(sku="INK-BK-R", name="Ink, remanufactured", consumable="ink.black", models=["hp-67"], unit_price_cents=1500, fulfiller_id="shop"))
    service.catalog.choose(world.household, DEVICE, SLOT, "INK-BK", mode="approve", substitutes=["INK-BK-R"])
    (first,) = world.plan(NOW)
    service.actions.approve(world.household, first.id, NOW)
    service.events.apply("shop", first.id, {"type": "out_of_stock", "event_id": "oos-1"}, NOW)
    (second,) = world.plan(NOW + timedelta(hours=1))
    assert (second.sku, second.idempotency_key, second.unit_price_cents) == ("INK-BK-R", NEED + "#2", 1500)
    assert world.plan(NOW + timedelta(hours=2)) == [], "one order in flight"


def test_no_parcel_is_ordered_to_arrive_while_the_household_is_away(world: World) -> None:
    """Hold 24 h and lead 2 days: a parcel ordered on Nov 02 arrives on Nov 05, inside a trip from Nov 04 to Nov 10."""
    world.service.calendars.add_range(world.household, date(2026, 11, 4), date(2026, 11, 9), "Trip")
    with Session(world.service.engine) as s:
        row = s.get(GwForecast, (DEVICE, SLOT))
        assert row is not None
        row.empty_p10 = datetime(2026, 11, 10, 12, tzinfo=UTC)  # it lasts until after return (use pauses while away)
        s.add(row)
        s.commit()
    assert world.plan(NOW) == [], "ordered to arrive after return, not now"
    assert world.plan(datetime(2026, 11, 6, 12, tzinfo=UTC)) == [], "a parcel ordered now would still arrive on their last day away"
    (order,) = world.plan(datetime(2026, 11, 7, 12, tzinfo=UTC))
    assert order.reason["policy"]["expected_arrival"] == "2026-11-10T12:00:00+00:00", "it arrives once they are back (Nov 09, Berlin)"


def test_approval_rechecks_consent_and_a_need_is_ordered_again_once_consent_is_back(world: World) -> None:
    world.service.catalog.choose(world.household, DEVICE, SLOT, "INK-BK", mode="approve")
    (first,) = world.plan(NOW)
    assert first.status == OrderStatus.AWAITING_APPROVAL
    with Session(world.service.engine) as s:  # a withdrawal that another process recorded, its handlers not yet run here
        words = CONSENT_WORDING[ConsentScope.AUTO_ORDER]
        s.add(ConsentRecord(household_id=world.household, device_id=DEVICE, scope="auto_order", granted=False, actor="n@example.org", wording_version=CONSENT_WORDING_VERSION, wording_text=words, at=NOW))
        s.commit()
    with pytest.raises(ValueError, match="consent was withdrawn"):
        world.service.actions.approve(world.household, first.id, NOW)
    cancelled = world.service.queries.get(first.id)
    assert cancelled is not None and (cancelled.status, cancelled.ended_by) == (OrderStatus.CANCELLED, EndedBy.CONSENT)
    assert world.plan(NOW) == [], "no consent, no order"
    world.service.consents.set(world.household, DEVICE, ConsentScope.AUTO_ORDER, True, "n@example.org")
    (second,) = world.plan(NOW)
    assert second.idempotency_key == NEED + "#2"


def test_the_database_keeps_one_open_order_per_slot(world: World) -> None:
    (first,) = world.plan(NOW)
    def twin() -> Order:
        return Order(**{**first.model_dump(), "id": str(uuid.uuid4()), "idempotency_key": NEED + "#9"})

    with Session(world.service.engine) as s, pytest.raises(sa.exc.IntegrityError):
        s.add(twin())
        s.commit()
    world.service.actions.cancel(world.household, first.id, NOW)
    with Session(world.service.engine) as s:  # an ended order leaves room for the next
        s.add(twin())
        s.commit()
    assert sorted(o.status for o in world.orders()) == [OrderStatus.CANCELLED, OrderStatus.HELD]


def test_two_processes_placing_at_once_never_hold_more_than_the_budget(world: World) -> None:
    """Each order fits the month alone, not both: whichever commits second waits for approval (SPEC 4: never above the cap)."""
    service = world.service
    assert service.provisioner is not None
    (issued,) = service.provisioner.provision(["need-printer-2"])
    service.gateway.registry.record_birth("need-printer-2", Birth("hp-67", "printer.inkjet", "1", (SlotSpec(SLOT, "ink.black", "percent", 100.0),)), NOW)
    service.households.claim(world.household, "need-printer-2", issued.claim_code)
    service.consents.set(world.household, "need-printer-2", ConsentScope.AUTO_ORDER, True, "n@example.org")
    with Session(service.engine) as s:  # 40.00 a month; each order is 25.00
        household = s.get(Household, world.household)
        assert household is not None
        household.monthly_budget_cents = 4000
        s.add(household)
        s.commit()
    offer = Offer("INK-BK", 2500, "EUR", "shop", 2 * DAY)
    for round_ in range(8):
        now = NOW + round_ * 40 * DAY  # a month of its own each round
        placements = [
            Placement(SlotChoice(world.household, device, SLOT, "INK-BK", 1, SlotMode.AUTO), offer, Decision("order", "due", OrderStatus.HELD, now + DAY), need, need, {})
            for device in (DEVICE, "need-printer-2")
            for need in [need_key(device, SLOT, now)]
        ]
        start = threading.Barrier(2)
        placed: list[Order | None] = []

        def place(p: Placement, at: datetime = now) -> None:
            start.wait(5)
            try:
                placed.append(service.placer._place(at, p))
            except sa.exc.OperationalError:  # SQLite: the second writer read before the first committed; the next pass plans again
                placed.append(None)

        threads = [threading.Thread(target=place, args=(p,)) for p in placements]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(o.status for o in placed if o is not None)
        assert statuses in (["awaiting_approval", "held"], ["held"]), statuses
        for o in placed:  # the slots free for the next round
            if o is not None:
                service.actions.cancel(world.household, o.id, now)


def test_each_stock_out_of_a_set_up_slot_is_logged_as_it_begins_and_ends(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def level(value: float) -> None:
        with Session(world.service.engine) as s:
            slot = s.get(GwSlot, (DEVICE, SLOT))
            assert slot is not None
            slot.level = value
            s.add(slot)
            s.commit()

    caplog.set_level(logging.WARNING, logger="replenish.ordering.stockouts")
    level(0.0)
    world.service.tick(NOW)
    world.service.tick(NOW + timedelta(hours=1))
    level(1.0)
    world.service.tick(NOW + timedelta(hours=7))
    lines = [r.getMessage() for r in caplog.records if r.name == "replenish.ordering.stockouts"]
    assert lines == [f"stock-out began: {DEVICE}/{SLOT} reports empty at {NOW.isoformat()}", f"stock-out ended: {DEVICE}/{SLOT} after 7.0 hours (empty since {NOW.isoformat()})"]


async def test_the_page_says_not_now_after_a_cancel_and_the_household_moves_or_ends_it(world: World) -> None:
    service = world.service
    pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, service.clock)
    app = create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", "op-token")
    (order,) = world.plan(service.clock.now())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", follow_redirects=True) as web:
        csrf = (await web.get("/login")).text.split('name="csrf" value="')[1].split('"')[0]
        home = await web.post("/login", data={"email": world.email, "password": PASSWORD, "csrf": csrf})
        assert all(str(escape(CONSENT_WORDING[scope])) in home.text for scope in ConsentScope), "the page shows the words each consent gives"
        csrf = home.text.split('name="csrf" value="')[1].split('"')[0]  # the session's own, after login
        page = await web.post(f"/orders/{order.id}/cancel", data={"csrf": csrf})
        assert f"Not now: nothing is ordered for {DEVICE} / {SLOT} before" in page.text and "unless its level falls to 10 %" in page.text
        url = f"/slots/{DEVICE}/{SLOT}/not-now"
        later = (service.clock.now() + 10 * DAY).date().isoformat()
        page = await web.post(url, data={"until": later, "csrf": csrf})
        assert page.status_code == 200 and f'value="{later}"' in page.text
        with Session(service.engine) as s:
            setting = s.get(SlotSetting, (DEVICE, SLOT))
            assert setting is not None and setting.not_before is not None and setting.not_before.date().isoformat() == later and setting.not_above_level == pytest.approx(0.1)
        for bad in ("tomorrow", (service.clock.now() - DAY).date().isoformat(), (service.clock.now() + 200 * DAY).date().isoformat()):
            assert (await web.post(url, data={"until": bad, "csrf": csrf})).status_code == 422, bad
        assert (await web.post(f"/slots/{DEVICE}/other/not-now", data={"until": "", "csrf": csrf})).status_code == 404
        assert (await web.post(url, data={"until": "", "csrf": "forged"})).status_code == 403
        page = await web.post(url, data={"until": "", "csrf": csrf})
        assert "planned again from now" in page.text and "Not now: nothing is ordered" not in page.text
    (again,) = world.plan(service.clock.now())
    assert again.idempotency_key == NEED + "#2"


async def test_order_now_shows_product_and_price_first_and_keeps_one_order_in_flight_and_the_budget(world: World) -> None:
    service = world.service
    pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, service.clock, service.placer)
    app = create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", "op-token")
    url = f"/slots/{DEVICE}/{SLOT}/order-now"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", follow_redirects=True) as web:
        csrf = (await web.get("/login")).text.split('name="csrf" value="')[1].split('"')[0]
        home = await web.post("/login", data={"email": world.email, "password": PASSWORD, "csrf": csrf})
        csrf = home.text.split('name="csrf" value="')[1].split('"')[0]
        assert url in home.text
        form = await web.get(url)
        assert form.status_code == 200 and "Ink" in form.text and "INK-BK" in form.text and "25.00 EUR" in form.text
        assert (await web.post(url, data={"csrf": "forged"})).status_code == 403
        page = await web.post(url, data={"csrf": csrf})
        assert page.status_code == 200 and "Ordered 1 × INK-BK" in page.text
        (order,) = world.orders()
        assert (order.status, order.idempotency_key) == (OrderStatus.HELD, NEED)
        assert order.release_at is not None and order.release_at <= service.clock.now(), "released at the next tick"
        assert (await web.post(url, data={"csrf": csrf})).status_code == 409, "one order in flight per slot"
        assert "already on its way" in (await web.get(url)).text
        assert world.plan(service.clock.now()) == [], "the planner counts the need as met"
        service.actions.cancel(world.household, order.id, service.clock.now())
        with Session(service.engine) as s:  # 10.00 a month: the next one goes over
            household = s.get(Household, world.household)
            assert household is not None
            household.monthly_budget_cents = 1000
            s.add(household)
            s.commit()
        assert "over your budget" in (await web.get(url)).text
        await web.post(url, data={"csrf": csrf})
        assert sorted(o.status for o in world.orders()) == [OrderStatus.AWAITING_APPROVAL, OrderStatus.CANCELLED]
        assert (await web.get(f"/slots/{DEVICE}/elsewhere/order-now")).status_code == 404
    service.consents.set(world.household, DEVICE, ConsentScope.AUTO_ORDER, False, "n@example.org")
    with pytest.raises(ValueError, match="allow auto order"):
        service.placer.order_now(world.household, DEVICE, SLOT, service.clock.now())


async def test_the_household_sets_its_budget_and_its_own_cancel_window(world: World) -> None:
    service = world.service
    pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, service.clock, service.placer)
    app = create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", "op-token")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", follow_redirects=True) as web:
        csrf = (await web.get("/login")).text.split('name="csrf" value="')[1].split('"')[0]
        home = await web.post("/login", data={"email": world.email, "password": PASSWORD, "csrf": csrf})
        csrf = home.text.split('name="csrf" value="')[1].split('"')[0]
        assert 'value="50.00"' in home.text and 'placeholder="24"' in home.text
        for budget, hours, reason in (("fifty", "", "amount"), ("50.001", "", "decimals"), ("-5", "", "out of range"), ("99999999", "", "out of range"), ("200000", "", "between 0 and 100,000"), ("50", "0.5", "between 1 and 168"), ("50", "nan", "number of hours"), ("50", "soon", "number of hours")):
            r = await web.post("/settings", data={"budget": budget, "cancel_window_hours": hours, "csrf": csrf})
            assert r.status_code == 422 and reason in r.json()["detail"], (budget, hours, r.text)
        assert (await web.post("/settings", data={"budget": "80", "cancel_window_hours": "2", "csrf": "forged"})).status_code == 403
        page = await web.post("/settings", data={"budget": "80.50", "cancel_window_hours": "2", "csrf": csrf})
        assert "Settings saved" in page.text and 'value="80.50"' in page.text and 'value="2"' in page.text
    account = service.households.get(world.household)
    assert account is not None and (account.monthly_budget_cents, account.cancel_window_hours) == (8050, 2.0)
    (order,) = world.plan(NOW)
    assert (order.status, order.release_at) == (OrderStatus.HELD, NOW + timedelta(hours=2)), "held for the household's own window"


def _table(name: str, *columns: str, times: tuple[str, ...] = ()) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns), *(sa.column(c, UTCDateTime()) for c in times))


_ORDERS = _table("orders", "id", "idempotency_key", "household_id", "device_id", "slot_id", "fulfiller_id", "sku", "quantity", "unit_price_cents", "currency", "status", "reason", times=("created_at", "updated_at"))


def _at_0006(db_url: str, *orders: tuple[str, str, str, str]) -> sa.Engine:
    """A database at revision 0006 with a household, a shop and these orders: (id, key, slot, status)."""
    engine = make_engine(db_url)
    migrate_to(engine, "0006")
    households = _table("households", "id", "email", "name", "password_hash", "pseudonym", "monthly_budget_cents", "currency", "address", times=("created_at",))
    fulfillers = _table("fulfillers", "id", "name", "webhook_url", "webhook_secret", "api_key_hash", "lead_time_days", "sandbox")
    common = {"household_id": 1, "device_id": DEVICE, "fulfiller_id": "shop", "sku": "INK-BK", "quantity": 1, "unit_price_cents": 2500, "currency": "EUR", "reason": "{}", "created_at": NOW, "updated_at": NOW}
    with engine.begin() as conn:
        conn.execute(households.insert(), [{"id": 1, "email": "o@example.org", "name": "O", "password_hash": "x", "pseudonym": "hh_o", "monthly_budget_cents": 5000, "currency": "EUR", "address": "{}", "created_at": NOW}])
        conn.execute(fulfillers.insert(), [{"id": "shop", "name": "Shop", "webhook_url": "http://127.0.0.1:9/", "webhook_secret": "whsec_x", "api_key_hash": "0" * 64, "lead_time_days": 2.0, "sandbox": False}])
        conn.execute(_ORDERS.insert(), [{**common, "id": i, "idempotency_key": key, "slot_id": slot, "status": status} for i, key, slot, status in orders])
    return engine


def test_revision_0009_gives_old_orders_their_need_and_old_consents_their_words_and_back(db_url: str) -> None:
    color = need_key(DEVICE, "color", None)
    engine = _at_0006(db_url, ("o-1", NEED, SLOT, "cancelled"), ("o-2", color, "color", "held"))
    consents = _table("consent_records", "household_id", "device_id", "scope", "granted", "actor", "wording_version", times=("at",))
    with engine.begin() as conn:
        conn.execute(consents.insert(), [{"household_id": 1, "device_id": DEVICE, "scope": s, "granted": True, "actor": "o", "wording_version": "2026-11-v1", "at": NOW} for s in ("telemetry", "auto_order")])
    migrate_to(engine, "head")
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT id, need, ended_by FROM orders")).all()) == [("o-1", NEED, "household"), ("o-2", color, None)]
        assert sorted(conn.execute(sa.text("SELECT scope, wording_text FROM consent_records")).all()) == [("auto_order", "auto order"), ("telemetry", "store levels")]
    migrate_to(engine, "0006", downgrade=True)
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT id, idempotency_key, status FROM orders")).all()) == [("o-1", NEED, "cancelled"), ("o-2", color, "held")]
        assert "wording_text" not in {c["name"] for c in sa.inspect(conn).get_columns("consent_records")}
    migrate_to(engine, "head")  # and up again
    engine.dispose()


def test_revision_0009_refuses_a_slot_with_two_open_orders_naming_it(db_url: str) -> None:
    engine = _at_0006(db_url, ("o-1", "k1", SLOT, "held"), ("o-2", "k2", SLOT, "shipped"))
    with pytest.raises(RuntimeError, match=f"{DEVICE}/{SLOT}"):
        migrate_to(engine, "head")
    engine.dispose()
