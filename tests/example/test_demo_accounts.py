"""Demo accounts (public password) exist only in development or when ``inventory-app seed`` asks."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from inventory_app.cli import seeds_demo
from inventory_app.seed import DEMO_PASSWORD, demo_logins
from tenantkit import Settings
from tests.conftest import SECRET
from tests.example import test_cli
from tests.example.test_cli import LOGIN, run

# in_process: these start servers of their own, not the suite's server.
pytestmark = pytest.mark.in_process

served = test_cli.served  # the real `inventory-app serve`, here with this module's `env`


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """``inventory-app`` as deployed: production, the embedded default database."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TENANTKIT_ENV": "production",
        "TENANTKIT_JWT_SECRET": SECRET,
        "TENANTKIT_DATA_DIR": str(tmp_path / "data"),
        "TENANTKIT_BCRYPT_ROUNDS": "4",
        "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
        "TENANTKIT_LOG_LEVEL": "WARNING",
        # the sources under test, not whatever copy the interpreter has installed
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }


def test_serve_in_production_creates_no_demo_account(served: tuple[str, str]) -> None:
    base, printed = served
    assert LOGIN.findall(printed) == []
    assert DEMO_PASSWORD not in printed
    for login in demo_logins():
        response = httpx.post(
            f"{base}/auth/login", json={"email": login.email, "password": login.password}, timeout=10
        )
        assert response.status_code == 401, (login.email, response.text)


def test_the_seed_command_still_seeds_on_purpose(env: dict[str, str]) -> None:
    seeded = run(env, "seed")
    assert seeded.returncode == 0, seeded.stderr
    assert len(LOGIN.findall(seeded.stdout)) == 4


@pytest.mark.parametrize(
    ("env", "database_url", "expected"),
    [
        ("development", None, True),
        ("production", None, False),
        ("test", None, False),
        ("development", "sqlite+aiosqlite:///elsewhere.db", False),
    ],
)
def test_serve_seeds_only_development_on_the_embedded_default(
    tmp_path: Path, env: str, database_url: str | None, expected: bool
) -> None:
    settings = Settings.load(env=env, jwt_secret=SECRET, data_dir=tmp_path, database_url=database_url)
    assert seeds_demo(settings) is expected
