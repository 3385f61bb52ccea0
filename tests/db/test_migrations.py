from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tenantkit.db import Database
from tenantkit.db.migrate import current, upgrade


async def test_migrations_apply_to_an_empty_database_and_are_idempotent(
    settings_factory: object, backend: str, request: object
) -> None:
    settings = settings_factory()  # type: ignore[operator]
    database = Database(settings.resolved_database_url)
    try:
        await upgrade(database, ["inventory_app:migrations"])  # already at head: a no-op
        heads = await current(database)
        assert "tk0001" in heads or any(h.startswith("tk") for h in heads)
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"tenants", "users", "memberships", "auth_sessions", "refresh_tokens"} <= tables
    finally:
        await database.dispose()


def test_cli_db_upgrade_and_current(tmp_path: Path) -> None:
    env = {
        "TENANTKIT_ENV": "development",
        "TENANTKIT_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    upgrade_run = subprocess.run(
        [sys.executable, "-m", "tenantkit.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert upgrade_run.returncode == 0, upgrade_run.stderr
    assert re.search(r"tk\d{4}", upgrade_run.stdout), upgrade_run.stdout
    assert (tmp_path / "tenantkit.sqlite3").exists()
    current_run = subprocess.run(
        [sys.executable, "-m", "tenantkit.cli", "db", "current"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert re.search(r"tk\d{4}", current_run.stdout), current_run.stdout


def test_cli_reports_bad_configuration_in_one_message(tmp_path: Path) -> None:
    env = {"TENANTKIT_BCRYPT_ROUNDS": "1", "TENANTKIT_DATABASE_URL": "mysql://x", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "tenantkit.cli", "check"], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 2
    for field in ("bcrypt_rounds", "database_url", "jwt_secret"):
        assert field in run.stderr
