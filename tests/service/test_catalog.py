"""The catalog and fulfilment systems edge to edge: `replenish catalog import` / `fulfillers` and the operator API on a real database."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from gateway import Birth, SlotSpec, make_engine
from replenish.bootstrap import Service
from replenish.catalog import Catalog
from replenish.cli import app as cli
from replenish.demo import load_demo_catalog
from replenish.fulfilment import hash_api_key
from replenish.settings import Settings
from replenish.storage import Product
from replenish.web import Pages, create_app
from tests.helpers import migrate_to

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
HEADER = "sku,name,consumable,models,slots,unit,pack_size,price,currency,fulfiller_id,lead_p10_days,lead_p50_days,lead_p90_days\n"
CSV = HEADER + (
    "MILK-1L,Whole milk 1 L,milk,fridge-scale-1,milk,g,1030,1.19,EUR,shop,0.5,1,2\n"
    "MILK-2L,Whole milk 2 L,milk,fridge-scale-1,milk,g,2060,2.29,EUR,shop,,,\n"
    "MILK 3L,Bad SKU,milk,fridge-scale-1,milk,g,3090,3.19,EUR,shop,,,\n"
    "MILK-4PT,Four pints,milk,fridge-scale-1,milk,g,2340,1.655,GBP,shop,,,\n"
    "MILK-X,Nobody sells it,milk,fridge-scale-1,milk,g,1030,1.00,EUR,nobody,,,\n"
    "MILK-Q,Backwards quantiles,milk,fridge-scale-1,milk,g,1030,1.00,EUR,shop,3,2,1\n"
)
UPDATE_JSON = json.dumps([
    {"sku": "MILK-1L", "name": "Whole milk 1 L (organic)", "consumable": "milk", "models": ["fridge-scale-1"], "slots": ["milk"],
     "unit": "g", "pack_size": 1030, "price": 1.49, "currency": "EUR", "fulfiller_id": "shop"},
    {"sku": "MILK-500", "name": "Whole milk 0.5 L", "consumable": "milk", "models": ["fridge-scale-1"], "unit": "g", "pack_size": 515,
     "price": 0.79, "currency": "EUR", "fulfiller_id": "shop", "lead_p10_days": 0.5, "lead_p50_days": 1, "lead_p90_days": 2},
    {"sku": "MILK-BAD", "name": "Litres", "consumable": "milk", "models": ["fridge-scale-1"], "unit": "l", "pack_size": 1,
     "price": 1, "currency": "EUR", "fulfiller_id": "shop", "fat": "3.5 %"},
])  # fmt: skip


def _service(db_url: str) -> Service:
    service = Service(Settings(env="test", database_url=db_url, admin_token="op-token", clock_start=NOW, clock_speed=1.0))
    service.migrate()
    return service


def _app(service: Service) -> object:
    pages = Pages(service.households, service.consents, service.gateway, service.queries, service.actions, service.clock)
    return create_app(pages, service.fulfillers, service.events, service.provisioner, "test-secret", service.settings.admin_token, catalog=service.catalog)


def _products(service: Service) -> dict[str, Product]:
    return {p.sku: p for p in service.catalog.products()}


def test_the_cli_imports_good_rows_names_bad_ones_and_updates_by_sku(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"REPLENISH_DATABASE_URL": db_url}
    added = runner.invoke(cli, ["fulfillers", "add", "shop", "The shop", "https://shop.example/hooks", "--lead-time-days", "3"], env=env)
    assert added.exit_code == 0, added.output
    creds = json.loads(added.stdout)
    again = runner.invoke(cli, ["fulfillers", "add", "shop", "Again", "https://shop.example/hooks"], env=env)
    assert again.exit_code == 2 and "exists already" in again.stderr
    (tmp_path / "products.csv").write_text(CSV)
    (tmp_path / "update.json").write_text(UPDATE_JSON)

    strict = runner.invoke(cli, ["catalog", "import", str(tmp_path / "products.csv"), "--all-or-nothing"], env=env)
    service = _service(db_url)
    assert strict.exit_code == 1 and "nothing applied" in strict.stdout and _products(service) == {}

    first = runner.invoke(cli, ["catalog", "import", str(tmp_path / "products.csv")], env=env)
    assert first.exit_code == 1  # some rows were bad: a script notices
    assert first.stderr.splitlines() == [
        "row 4, sku: 'MILK 3L' is not valid: 1-64 letters, digits, '.', '_' and '-', starting with a letter or digit",
        "row 5, price: 1.655 has more decimals than GBP's 2",
        "row 6, fulfiller_id: no fulfilment system 'nobody' (add it first: replenish fulfillers add)",
        "row 7, lead_p50_days: quantiles must not decrease: p10 3 <= p50 2 <= p90 1 days",
    ]
    assert "products: 2 created, 0 updated, 4 rows rejected" in first.stdout
    products = _products(service)
    assert set(products) == {"MILK-1L", "MILK-2L"}
    one = products["MILK-1L"]
    assert (one.unit, one.pack_size, one.unit_price_cents, one.slots, one.lead_p10_days, one.lead_p50_days, one.lead_p90_days) == ("g", 1030.0, 119, ["milk"], 0.5, 1.0, 2.0)
    assert products["MILK-2L"].lead_p50_days is None  # the fulfilment system's 3 days apply

    second = runner.invoke(cli, ["catalog", "import", str(tmp_path / "update.json")], env=env)
    assert second.exit_code == 1 and "products: 1 created, 1 updated, 1 rows rejected" in second.stdout
    assert "row 3, fat: unknown field" in second.stderr and "row 3, unit: must be one of" in second.stderr
    products = _products(service)
    assert (products["MILK-1L"].name, products["MILK-1L"].unit_price_cents, products["MILK-1L"].lead_p50_days) == ("Whole milk 1 L (organic)", 149, None)
    assert products["MILK-500"].slots == []  # any slot holding milk

    (tmp_path / "typo.csv").write_text("sku,prcie\nA,1\n")
    typo = runner.invoke(cli, ["catalog", "import", str(tmp_path / "typo.csv")], env=env)
    assert typo.exit_code == 2 and typo.stderr.count("\n") == 1 and "row 1: unknown column 'prcie'" in typo.stderr
    missing = runner.invoke(cli, ["catalog", "import", str(tmp_path / "nothere.json")], env=env)
    assert missing.exit_code == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.output

    listed = runner.invoke(cli, ["fulfillers", "list"], env=env)
    (shop,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert shop == {"id": "shop", "name": "The shop", "webhook_url": "https://shop.example/hooks", "lead_time_days": 3.0, "sandbox": False}
    assert service.fulfillers.for_key(creds["api_key"]) is not None
    service.engine.dispose()


def test_the_cli_imports_fulfillers_keeping_old_secrets_and_storing_keys_hashed(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"REPLENISH_DATABASE_URL": db_url}
    given_key = "k" * 40
    (tmp_path / "f.csv").write_text(
        "id,name,webhook_url,lead_time_days,sandbox,webhook_secret,api_key\n"
        f"acme,Acme,https://acme.example/hooks,2,no,,{given_key}\n"
        "beta,Beta,https://beta.example/hooks,,yes,,\n"
        "gamma,Gamma,ftp://gamma.example,,,,\n"
    )
    out = tmp_path / "creds.json"
    first = runner.invoke(cli, ["fulfillers", "import", str(tmp_path / "f.csv"), "--out", str(out)], env=env)
    assert first.exit_code == 1 and "row 4, webhook_url" in first.stderr and "2 created, 0 updated, 1 rows rejected" in first.stdout
    issued = {c["id"]: c for c in json.loads(out.read_text())["credentials"]}
    assert issued["acme"]["api_key"] == given_key and issued["beta"]["api_key"].startswith("rk_") and out.stat().st_mode & 0o777 == 0o600
    service = _service(db_url)
    stored = {f.id: f for f in service.fulfillers.all()}
    assert stored["acme"].api_key_hash == hash_api_key(given_key) and given_key not in json.dumps([f.model_dump() for f in stored.values()])
    assert (stored["acme"].lead_time_days, stored["beta"].lead_time_days, stored["beta"].sandbox) == (2.0, service.settings.lead_time_days, True)

    (tmp_path / "g.json").write_text(json.dumps([{"id": "beta", "name": "Beta GmbH", "webhook_url": "https://beta.example/v2", "lead_time_days": 1.5}]))
    second = runner.invoke(cli, ["fulfillers", "import", str(tmp_path / "g.json")], env=env)
    assert second.exit_code == 0 and "0 created, 1 updated, 0 rows rejected" in second.stdout and "api_key" not in second.stdout
    beta = {f.id: f for f in service.fulfillers.all()}["beta"]
    assert (beta.name, beta.webhook_url, beta.lead_time_days, beta.sandbox) == ("Beta GmbH", "https://beta.example/v2", 1.5, True)
    assert (beta.webhook_secret, beta.api_key_hash) == (stored["beta"].webhook_secret, stored["beta"].api_key_hash)  # kept
    service.engine.dispose()


def test_the_operator_api_imports_csv_and_json_with_its_token_only(db_url: str) -> None:
    service = _service(db_url)
    app = _app(service)
    op = {"Authorization": "Bearer op-token"}

    async def calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            return [
                await http.post("/api/admin/v1/catalog/import", content=CSV, headers={"content-type": "text/csv"}),
                await http.post("/api/admin/v1/fulfillers", json={"id": "shop", "name": "Shop", "webhook_url": "not a url"}, headers=op),
                await http.post("/api/admin/v1/fulfillers", json={"id": "shop", "name": "Shop", "webhook_url": "https://shop.example/h"}, headers=op),
                await http.post("/api/admin/v1/fulfillers", json={"id": "shop", "name": "Shop", "webhook_url": "https://shop.example/h"}, headers=op),
                await http.post("/api/admin/v1/catalog/import?all_or_nothing=true", content=CSV, headers=op | {"content-type": "text/csv"}),
                await http.post("/api/admin/v1/catalog/import", content=CSV, headers=op | {"content-type": "text/csv"}),
                await http.post("/api/admin/v1/catalog/import?format=json", content=UPDATE_JSON, headers=op),
                await http.post("/api/admin/v1/catalog/import", content="sku,prcie\nA,1\n", headers=op | {"content-type": "text/csv"}),
                await http.post("/api/admin/v1/catalog/import", content=b"\xff\xfe", headers=op | {"content-type": "text/csv"}),
                await http.post("/api/admin/v1/fulfillers/import", content="id,name,webhook_url\nbeta,Beta,https://beta.example/h\n", headers=op | {"content-type": "text/csv"}),
                await http.get("/api/admin/v1/fulfillers", headers=op),
                await http.get("/api/admin/v1/catalog/products", headers=op),
            ]

    anonymous, bad_url, added, twice, strict, first, update, typo, binary, f_import, f_list, listed = asyncio.run(calls())
    assert (anonymous.status_code, bad_url.status_code, added.status_code, twice.status_code) == (401, 422, 201, 409)
    assert "webhook_url" in bad_url.json()["detail"] and added.json()["api_key"].startswith("rk_")
    assert strict.status_code == 422 and strict.json()["detail"]["applied"] is False
    assert first.status_code == 200
    report = first.json()
    assert (report["created"], report["updated"]) == (["MILK-1L", "MILK-2L"], [])
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(4, "sku"), (5, "price"), (6, "fulfiller_id"), (7, "lead_p50_days")]
    assert (update.json()["created"], update.json()["updated"]) == (["MILK-500"], ["MILK-1L"])
    assert {(e["row"], e["field"]) for e in update.json()["errors"]} == {(3, "fat"), (3, "unit")}
    assert typo.status_code == 422 and "unknown column 'prcie'" in typo.json()["detail"]
    assert binary.status_code == 422 and "UTF-8" in binary.json()["detail"]
    assert f_import.json()["created"] == ["beta"] and f_import.json()["credentials"][0]["id"] == "beta"
    assert [f["id"] for f in f_list.json()["fulfillers"]] == ["beta", "shop"] and "api_key_hash" not in f_list.text and "webhook_secret" not in f_list.text
    assert [p["sku"] for p in listed.json()["products"]] == ["MILK-1L", "MILK-2L", "MILK-500"]
    service.engine.dispose()


def _announce(service: Service, device_id: str, model: str, slots: list[SlotSpec]) -> None:
    service.gateway.registry.register(device_id)
    service.gateway.registry.record_birth(device_id, Birth(model=model, kind="printer.inkjet", firmware="1", slots=tuple(slots)), NOW)


def test_substitutes_are_ranked_compatible_only_and_quantity_follows_the_target(db_url: str) -> None:
    service = _service(db_url)
    service.fulfillers.add("demo-sink", "Demo", "http://127.0.0.1:9/hook", lead_time_days=2)
    assert load_demo_catalog(service) == 29
    hh = service.households.create("sub@example.org", "Subs", "long enough password")
    assert hh.id is not None
    catalog = service.catalog
    ink = [SlotSpec(s, f"ink.{s}", "percent", 100.0) for s in ("black", "cyan", "magenta", "yellow")]
    _announce(service, "printer-1", "hp-67", ink)
    _announce(service, "fridge-1", "fridge-scale-1", [SlotSpec("milk", "milk", "g", 2080.0)])

    assert catalog.suggest_substitutes(hh.id, "printer-1", "black", "HP67XL-BL") == ["RM67XL-BL", "HP67-BL", "HP67XL-BL-2"]
    setting = catalog.choose(hh.id, "printer-1", "black", "HP67XL-BL", substitutes=["HP67-BL", "RM67XL-BL"])
    assert setting.substitutes == ["HP67-BL", "RM67XL-BL"]  # the household's order, not the suggestion's
    with pytest.raises(ValueError, match="'HP67XL-CY' does not fit this slot"):
        catalog.choose(hh.id, "printer-1", "black", "HP67XL-BL", substitutes=["HP67-BL", "HP67XL-CY"])
    with pytest.raises(ValueError, match="is listed twice"):
        catalog.choose(hh.id, "printer-1", "black", "HP67XL-BL", substitutes=["HP67-BL", "HP67-BL"])
    with pytest.raises(ValueError, match="does not fit slot 'cyan'"):
        catalog.choose(hh.id, "printer-1", "cyan", "HP67XL-BL")
    with pytest.raises(ValueError, match="does not fit slot 'milk'"):
        catalog.choose(hh.id, "fridge-1", "milk", "BEANS-1KG")

    milk = catalog.choose(hh.id, "fridge-1", "milk", "MILK-1L", target_level=2060.0, substitutes=["MILK-2L"])
    assert (milk.quantity, milk.target_level) == (2, 2060.0)  # two 1 L cartons (1,030 g each) fill an empty shelf to its target
    with pytest.raises(ValueError, match="above the slot's capacity"):
        catalog.choose(hh.id, "fridge-1", "milk", "MILK-1L", target_level=5000.0)
    assert catalog.suggest_substitutes(hh.id, "fridge-1", "milk", "MILK-1L") == ["MILK-2L"]  # GBP and USD packs are not the household's currency
    stored = {(s.device_id, s.slot_id): s for s in catalog.settings()}
    assert stored[("printer-1", "black")].substitutes == ["HP67-BL", "RM67XL-BL"] and stored[("fridge-1", "milk")].quantity == 2
    service.engine.dispose()


def test_the_demo_catalog_covers_every_simulated_kind_and_slot(db_url: str) -> None:
    from firmware_sim import KINDS
    from replenish.catalog import fits

    service = _service(db_url)
    service.fulfillers.add("demo-sink", "Demo", "http://127.0.0.1:9/hook")
    load_demo_catalog(service)
    products = service.catalog.products()
    for kind in KINDS.values():
        for slot in kind.slots({"capacity": 1000.0, "bag_g": 250.0}):
            fitting = [p for p in products if fits(p, kind.model, slot.slot, slot.consumable, slot.unit)]
            assert fitting, f"no product for {kind.kind} {kind.model} slot {slot.slot}"
            assert all(p.pack_size and p.lead_p50_days is not None for p in fitting)
    service.engine.dispose()


def test_revision_0011_keeps_old_products_and_choices_meaningful_and_goes_back(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate_to(engine, "0010")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO households (email, name, password_hash, pseudonym, monthly_budget_cents, currency, address, created_at) VALUES ('o@example.org', 'O', 'x', 'p-1', 5000, 'EUR', '{}', :t)"), {"t": NOW})
        conn.execute(sa.text("INSERT INTO fulfillers (id, name, webhook_url, webhook_secret, api_key_hash, lead_time_days, sandbox) VALUES ('f', 'F', 'http://x', 's', 'h', 4.0, FALSE)"))
        conn.execute(sa.text("INSERT INTO products (sku, name, consumable, models, unit_price_cents, currency, fulfiller_id) VALUES ('OLD', 'Old ink', 'ink.black', '[\"hp-67\"]', 999, 'EUR', 'f')"))
        hh = conn.execute(sa.text("SELECT id FROM households")).scalar_one()
        conn.execute(sa.text("INSERT INTO slot_settings (device_id, slot_id, household_id, sku, quantity, mode) VALUES ('d', 'black', :h, 'OLD', 2, 'auto')"), {"h": hh})
    migrate_to(engine, "head")
    catalog = Catalog(engine)
    (old,) = catalog.products()
    assert (old.slots, old.pack_size, old.unit, old.lead_p50_days) == ([], None, None, None)  # every slot of its consumable; the fulfiller's lead time
    (setting,) = catalog.settings()
    assert (setting.quantity, setting.target_level, setting.substitutes) == (2, None, [])  # two packs an order, as before
    migrate_to(engine, "0010", downgrade=True)
    with engine.connect() as conn:
        assert "pack_size" not in {c["name"] for c in sa.inspect(conn).get_columns("products")}
        assert conn.execute(sa.text("SELECT sku, quantity FROM slot_settings")).all() == [("OLD", 2)]
    engine.dispose()
