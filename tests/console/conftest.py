"""Browser fixtures: headless Chromium driven by Playwright, against the example app served on a port.

Chromium is the Debian package (``/usr/bin/chromium``, or ``TENANTKIT_CHROMIUM``);
Playwright's own browser download is not used. Without Playwright or Chromium
the browser tests skip with the reason, and fail under
``TENANTKIT_REQUIRE_SERVICES=1`` (CI installs both).

One uvicorn server (SQLite, a fresh database) and one browser per test module;
each test registers its own tenant, so tests do not depend on one another.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from inventory_app.app import create_app, create_kit
from tenantkit import Settings, hookimpl
from tenantkit.admin import create_superadmin
from tests.conftest import REQUIRE, SECRET, serve_in_thread

PASSWORD = "correct horse battery"
SUPERADMIN = ("operator@platform.example.com", "operator password 1")
CHROMIUM = os.environ.get("TENANTKIT_CHROMIUM", "/usr/bin/chromium")
PANEL_SCRIPT = """\
export async function render(container, api) {
  const me = await api.get("/auth/me");
  const p = document.createElement("p");
  p.className = "plugin-hello";
  p.textContent = `Hello ${me.email} from a plugin`;
  container.append(p);
}
"""


def fail_or_skip(reason: str) -> NoReturn:
    if REQUIRE:
        pytest.fail(reason + " (TENANTKIT_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


class PanelPlugin:
    """A real plugin adding two console panels (one behind a permission USER lacks)."""

    def __init__(self, directory: Path) -> None:
        self.script = directory / "hello.js"
        self.script.write_text(PANEL_SCRIPT)

    @hookimpl
    def tenantkit_console_panels(self) -> list[dict[str, Any]]:
        return [
            {"id": "hello", "title": "Plugin hello", "script": str(self.script)},
            {
                "id": "reports",
                "title": "Plugin reports",
                "script": str(self.script),
                "permission": "reports.view",
            },
        ]

    @hookimpl
    def tenantkit_register_permissions(self) -> list[tuple[str, str]]:
        return [("reports.view", "See the plugin's reports panel (ADMIN holds it, USER does not)")]


@dataclass
class Served:
    """The served example app: its base URL and shortcuts over HTTP."""

    url: str

    def register(self, name: str | None = None) -> dict[str, str]:
        """A new tenant with an ADMIN: ``{email, slug, name, tenant_id}``."""
        name = name or f"Brand {uuid.uuid4().hex[:8]}"
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        response = httpx.post(
            f"{self.url}/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": name}
        )
        assert response.status_code == 201, response.text
        tenant = response.json()["tenant"]
        return {"email": email, "slug": tenant["slug"], "name": name, "tenant_id": tenant["id"]}

    def token(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        response = httpx.post(f"{self.url}/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def join(self, admin: dict[str, str], role: str = "USER") -> str:
        """A second member of ``admin``'s tenant (invited, then registered); their email."""
        email = f"member-{uuid.uuid4().hex[:8]}@example.com"
        invited = httpx.post(
            f"{self.url}/users/invitations",
            json={"email": email, "role": role},
            headers=self.token(admin["email"]),
        )
        assert invited.status_code == 201, invited.text
        registered = httpx.post(
            f"{self.url}/auth/register",
            json={"email": email, "password": PASSWORD, "invite_token": invited.json()["invite_token"]},
        )
        assert registered.status_code == 201, registered.text
        return email


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, browser: Any) -> Iterator[Served]:
    """The example app (with a console panel plugin) on a loopback port, in a thread.

    It asks for the browser first, so a missing browser skips before anything starts.
    """
    directory = tmp_path_factory.mktemp("console")
    database = directory / "db.sqlite3"
    shutil.copy(sqlite_template, database)
    settings = Settings.load(
        env="test",
        jwt_secret=SECRET,
        bcrypt_rounds=4,
        data_dir=directory / "data",
        database_url=f"sqlite+aiosqlite:///{database}",
        log_level="WARNING",
        rate_limit_auth="100000/minute",
        rate_limit_api="100000/minute",
        # Webhooks may target a closed loopback port: one attempt, then the delivery is dead.
        webhook_allow_hosts=["127.0.0.1"],
        webhook_max_attempts=1,
        webhook_timeout=2.0,
    )

    async def operator() -> None:
        kit = create_kit(settings, autoload_plugins=False)
        await kit.startup()
        try:
            await create_superadmin(kit, *SUPERADMIN)
        finally:
            await kit.shutdown()

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    setup = threading.Thread(target=lambda: asyncio.run(operator()))
    setup.start()
    setup.join(60)
    kit = create_kit(settings, autoload_plugins=False, plugins=[PanelPlugin(directory)])
    with serve_in_thread(create_app(kit)) as url:
        yield Served(url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright (skips, or fails under REQUIRE, when absent)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        fail_or_skip("playwright is not installed: pip install playwright")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        fail_or_skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts (separate cookie jars: separate "tabs" of separate devices)."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1000, "height": 700})
        context = browser.new_context(**options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                refused.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        page.errors = errors
        return page

    refused: list[str] = []
    yield make
    for context in contexts:
        context.close()
    assert refused == [], "the page broke its Content-Security-Policy"


def sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    """Sign in through the console's form and wait for the navigation."""
    page.goto(f"{base}/console")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("#nav:not([hidden])").wait_for()


def open_panel(page: Any, title: str) -> None:
    """Follow the navigation link ``title`` and wait until its panel has rendered."""
    link = page.locator("#nav a", has_text=title).first
    panel = (link.get_attribute("href") or "#").lstrip("#")
    link.click()
    page.locator(f"#panel-{panel}[data-ready]").wait_for()


def wait_count(locator: Any, count: int) -> None:
    """Wait (Playwright's retrying ``expect``) until ``locator`` matches ``count`` elements."""
    from playwright.sync_api import expect

    expect(locator).to_have_count(count)
