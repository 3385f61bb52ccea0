"""``tenantkit routes`` lists every route with the permissions it requires."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TENANTKIT_ENV": "development", "TENANTKIT_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "tenantkit.cli", *args], env=env, capture_output=True, text=True, check=False
    )


def test_routes_lists_permissions_of_framework_routes(tmp_path: Path) -> None:
    run = _run(tmp_path, "routes")
    assert run.returncode == 0, run.stderr
    rows = {tuple(line.split(None, 2)) for line in run.stdout.splitlines()}
    assert ("GET", "/users", "users.read") in rows
    assert ("PATCH", "/users/{user_id}/role", "users.update") in rows
    assert ("GET", "/auth/me", "authenticated") in rows
    assert ("POST", "/auth/login", "public") in rows


def test_routes_includes_the_app_given_with_app(tmp_path: Path) -> None:
    run = _run(tmp_path, "--app", "inventory_app.app:create_app", "routes")
    assert run.returncode == 0, run.stderr
    rows = {tuple(line.split(None, 2)) for line in run.stdout.splitlines()}
    assert ("POST", "/products", "products.create") in rows
    assert ("GET", "/users", "users.read") in rows


def test_a_bad_app_spec_is_a_clear_error(tmp_path: Path) -> None:
    run = _run(tmp_path, "--app", "no_such_module:factory", "routes")
    assert run.returncode == 2
    assert "cannot load --app" in run.stderr
