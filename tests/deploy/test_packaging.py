"""A plain `pip install .` (not editable) into a fresh virtualenv works from outside the checkout.

The project is copied as git tracks it (what a clone or a source distribution holds), installed
with its dependencies (pip's cache makes that quick after `make install`), and then used from a
folder of its own: `replenish --help`, `replenish migrate` on a new SQLite file, and the package
data a running service needs (the migrations, the device schemas, the page templates).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import venv
from pathlib import Path

from tests.helpers import ROOT

INSTALL_TIMEOUT_S = 600


def _tracked_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked, or new and not ignored) copied to `dest`."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    return dest


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REPLENISH_", "PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(args, cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_a_plain_install_migrates_and_answers_from_outside_the_checkout(tmp_path: Path) -> None:
    src = _tracked_copy(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, replenish = env_dir / "bin" / "python", env_dir / "bin" / "replenish"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)], cwd=tmp_path, timeout=INSTALL_TIMEOUT_S)
    away = tmp_path / "elsewhere"
    away.mkdir()

    where = _run([str(python), "-c", "import gateway, replenish, firmware_sim; print(replenish.__file__, gateway.__file__)"], cwd=away).stdout
    assert str(env_dir) in where and str(ROOT) not in where and str(src) not in where, where

    assert "migrate" in _run([str(replenish), "--help"], cwd=away).stdout
    db = away / "fresh.db"
    out = _run([str(replenish), "migrate"], cwd=away, env={"REPLENISH_DATABASE_URL": f"sqlite:///{db}"}).stdout
    assert "up to date" in out
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {"gw_devices", "gw_readings", "households", "orders", "outbox", "alembic_version"} <= tables
    head = max(p.name.split("_")[0] for p in (ROOT / "replenish" / "storage" / "migrations" / "versions").glob("[0-9]*.py"))
    assert version == head, "the installed migrations stop short of the checkout's newest"

    # The package data a running service reads: device schemas and the household pages' templates.
    probe = (
        "import json; from gateway.protocol import validator; from replenish.web.pages import TEMPLATES; "
        "print(json.dumps([validator('telemetry').schema['title'] is not None, TEMPLATES.get_template('home.html').name]))"
    )
    assert json.loads(_run([str(python), "-c", probe], cwd=away).stdout) == [True, "home.html"]
