"""axe-core in the browser over the console's main screens, at desktop width and at 320 px.

No ``serious`` or ``critical`` violation is allowed. At 320 px nothing may
overflow sideways. With ``TENANTKIT_CONSOLE_SCREENSHOTS=1`` the desktop screens
(and the members screen at 320 px) are saved to ``docs/assets/console/`` (the
pictures in docs/console.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import SUPERADMIN, Served, fail_or_skip, sign_in

pytestmark = pytest.mark.timeout(180)

SHOTS = Path(__file__).parents[2] / "docs" / "assets" / "console"
SCREENS = ["members", "roles", "sessions", "security", "api-keys", "webhooks", "dead-letters", "audit"]
WIDTHS = {"desktop": {"width": 1000, "height": 700}, "narrow": {"width": 320, "height": 640}}


@pytest.fixture(scope="module")
def axe_source() -> str:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        fail_or_skip("axe-playwright-python is not installed: pip install axe-playwright-python")
    return str(Axe().axe_script)


def _violations(page: Any, axe_source: str) -> list[str]:
    page.evaluate(axe_source)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert len(results["passes"]) > 10, "axe did not run"
    if os.environ.get("TENANTKIT_AXE_VERBOSE") == "1":
        print(page.url, [(v["id"], v["impact"]) for v in results["violations"]])
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


def _no_placeholders(page: Any) -> None:
    text = page.inner_text("body")
    assert not re.search(r"\b(null|undefined|NaN|\[object Object\])\b", text), text


def _fits(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1"))


def _shoot(page: Any, name: str, width: str) -> None:
    if os.environ.get("TENANTKIT_CONSOLE_SCREENSHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    if width == "desktop":
        page.screenshot(path=str(SHOTS / f"{name}.png"))
    elif name == "members":  # one narrow picture: the layout at 320 px
        page.screenshot(path=str(SHOTS / "members-320.png"))


@pytest.mark.parametrize("width", list(WIDTHS))
def test_main_screens_have_no_serious_violations(
    served: Served, new_page: Any, axe_source: str, width: str
) -> None:
    admin = served.register("Acme Outfitters")
    served.join(admin)
    token = served.token(admin["email"])
    httpx.post(
        f"{served.url}/users/invitations", json={"email": "sam@example.com", "role": "USER"}, headers=token
    ).raise_for_status()
    httpx.post(
        f"{served.url}/api-keys", json={"name": "ci deploys", "scopes": ["products.read"]}, headers=token
    ).raise_for_status()

    page = new_page(viewport=WIDTHS[width])
    page.goto(f"{served.url}/console")
    page.get_by_role("heading", name="Sign in").wait_for()
    problems = {"sign-in": _violations(page, axe_source)}
    assert _fits(page), "the sign-in screen overflows"
    _shoot(page, "sign-in", width)

    sign_in(page, served.url, admin["email"])
    for screen in SCREENS:
        page.goto(f"{served.url}/console#{screen}")
        page.locator(f"#panel-{screen}[data-ready]").wait_for()
        problems[screen] = _violations(page, axe_source)
        _no_placeholders(page)
        assert _fits(page), f"{screen} overflows at {width}"
        _shoot(page, screen, width)

    # A problem shown next to its control is accessible too.
    page.goto(f"{served.url}/console#audit")
    filters = page.get_by_role("form", name="Filter the audit log")
    filters.get_by_label("Actor (user id)").fill("nope")
    filters.get_by_role("button", name="Apply filters").click()
    filters.locator(".field-error:not([hidden])").wait_for()
    problems["error"] = _violations(page, axe_source)
    _shoot(page, "error", width)

    operator = new_page(viewport=WIDTHS[width])
    sign_in(operator, served.url, *SUPERADMIN)
    operator.goto(f"{served.url}/console#tenants")
    operator.get_by_role("list", name="Tenants").wait_for()
    problems["tenants"] = _violations(operator, axe_source)
    assert _fits(operator), f"tenants overflows at {width}"
    _shoot(operator, "tenants", width)

    assert {screen: found for screen, found in problems.items() if found} == {}
