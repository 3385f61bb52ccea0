"""docs/getting-started.md works as written: its app, its commands, its requests."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest
from starlette.applications import Starlette

from tenantkit.cli import main as tenantkit_cli
from tests.helpers import assert_problem, serve

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(PAGE.read_text()) if lang == language]


def app_source() -> str:
    sources = [b for b in blocks("python") if b.startswith("# app.py\n")]
    assert len(sources) == 1, "the page shows app.py in one python block starting with '# app.py'"
    return sources[0]


def curl_bodies() -> list[dict[str, str]]:
    """The JSON bodies the 'Try it' requests send, in order (register, login, note)."""
    text = "\n".join(blocks("bash"))
    return [json.loads(body) for body in re.findall(r"-d '(\{.*?\})'", text)]


def run_shell_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Apply the page's ``export`` lines and run its ``tenantkit`` commands; return the rest."""
    others = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "export":
                name, _, value = words[1].partition("=")
                monkeypatch.setenv(name, value)
            elif words[0] == "tenantkit":
                assert tenantkit_cli(words[1:]) == 0, line
            else:
                others.append(words[0])
    return others


def import_app(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("getting_started_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_getting_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the page relies on the default ./.tenantkit data directory
    for name in (
        "TENANTKIT_DATABASE_URL",
        "TENANTKIT_REDIS_URL",
        "TENANTKIT_JWT_SECRET",
        "TENANTKIT_DATA_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENANTKIT_BCRYPT_ROUNDS", "4")  # speed only; not something the page sets
    monkeypatch.setenv("TENANTKIT_LOG_LEVEL", "WARNING")

    commands = run_shell_lines(monkeypatch)
    assert {"pip", "uvicorn", "curl"} <= set(commands)
    assert (tmp_path / ".tenantkit" / "tenantkit.sqlite3").is_file(), "tenantkit db upgrade made no database"

    (tmp_path / "app.py").write_text(app_source())
    module = import_app(tmp_path / "app.py")
    try:
        assert isinstance(module.app, Starlette)  # what `uvicorn app:app` serves
        asyncio.run(exercise(module.app, curl_bodies()))
    finally:
        sys.modules.pop("getting_started_app", None)


async def exercise(app: Starlette, bodies: list[dict[str, str]]) -> None:
    register, login, note = bodies
    async with serve(app) as client:
        assert_problem(await client.get("/notes"), 401)

        created = await client.post("/auth/register", json=register)
        assert created.status_code == 201, created.text
        assert created.json()["role"] == "ADMIN"
        tokens = await client.post("/auth/login", json=login)
        assert tokens.status_code == 200, tokens.text
        bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}

        added = await client.post("/notes", json=note, headers=bearer)
        assert added.status_code == 201, added.text
        listed = await client.get("/notes", headers=bearer)
        assert listed.status_code == 200, listed.text
        assert listed.json()["tenant"] == "acme"
        assert [item["text"] for item in listed.json()["items"]] == [note["text"]]

        # a second tenant sees its own (empty) list and cannot name Acme
        other = {**register, "email": "grace@example.com", "tenant_name": "Globex"}
        assert (await client.post("/auth/register", json=other)).status_code == 201
        tokens = await client.post("/auth/login", json={**login, "email": "grace@example.com"})
        other_bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        theirs = await client.get("/notes", headers=other_bearer)
        assert theirs.status_code == 200, theirs.text
        assert theirs.json() == {"tenant": "globex", "items": [], "next_cursor": None}
        assert_problem(await client.get("/notes", headers={**other_bearer, "X-Tenant-ID": "acme"}), 403)
        assert_problem(await client.get("/notes", headers={"Authorization": "Bearer nope"}), 401)
