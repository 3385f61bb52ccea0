"""The console in a real browser: sign in, manage a tenant, and see the API's answers.

Every scenario drives headless Chromium against the example app served on a
loopback port; what the page shows is checked against the API afterwards.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.console.conftest import PASSWORD, SUPERADMIN, Served, open_panel, sign_in, wait_count

pytestmark = pytest.mark.timeout(120)


def _me(served: Served, email: str) -> dict[str, Any]:
    return dict(httpx.get(f"{served.url}/auth/me", headers=served.token(email)).json())


def test_sign_in_shows_only_what_the_role_allows(served: Served, new_page: Any) -> None:
    admin = served.register()
    member = served.join(admin)
    page = new_page()
    sign_in(page, served.url, admin["email"])
    assert admin["email"] in page.locator("#account").inner_text()
    admin_nav = page.locator("#nav a").all_inner_texts()
    assert {
        "Members",
        "Roles",
        "My sessions",
        "API keys",
        "Audit log",
        "Plugin hello",
        "Plugin reports",
    } <= set(admin_nav)
    assert "Tenants" not in admin_nav

    other = new_page()
    sign_in(other, served.url, member)
    assert other.locator("#nav a").all_inner_texts() == ["My sessions", "Two-factor sign-in", "Plugin hello"]
    # The token lives in memory only: nothing in web storage, no token cookie readable by script.
    storage = other.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert storage == [0, 0, ""]
    # A reload signs in again from the HttpOnly refresh cookie alone.
    other.reload()
    other.locator("#nav:not([hidden])").wait_for()
    assert member in other.locator("#account").inner_text()
    assert not page.errors and not other.errors


def test_invite_a_member_and_see_the_invitation(served: Served, new_page: Any) -> None:
    admin = served.register()
    page = new_page()
    sign_in(page, served.url, admin["email"])
    invite = page.get_by_role("form", name="Invite a member")
    invite.get_by_label("Email").fill("Newcomer@Example.com")
    invite.get_by_label("Role").select_option("USER")
    invite.get_by_role("button", name="Send invitation").click()
    pending = page.get_by_role("list", name="Pending invitations")
    pending.get_by_text("newcomer@example.com").wait_for()
    assert "Invitation sent" in page.locator(".flash").inner_text()
    listed = httpx.get(f"{served.url}/users/invitations", headers=served.token(admin["email"])).json()
    assert [i["email"] for i in listed["items"]] == ["newcomer@example.com"]

    # Revoke it from the list: gone from the page and from the API.
    page.get_by_role("button", name="Revoke the invitation of newcomer@example.com").click()
    page.get_by_text("No pending invitations.").wait_for()
    listed = httpx.get(f"{served.url}/users/invitations", headers=served.token(admin["email"])).json()
    assert listed["items"] == []


def test_change_a_role(served: Served, new_page: Any) -> None:
    admin = served.register()
    member = served.join(admin)
    page = new_page()
    sign_in(page, served.url, admin["email"])
    row = page.get_by_role("form", name=f"Role of {member}")
    row.get_by_label(f"Role of {member}").select_option("ADMIN")
    row.get_by_role("button", name="Change role").click()
    page.locator(".flash", has_text=f"{member} is now ADMIN").wait_for()
    assert _me(served, member)["role"] == "ADMIN"


def test_choose_another_tenant_from_the_callers_memberships(served: Served, new_page: Any) -> None:
    first = served.register("Northwind")
    second = served.register("Contoso")
    invited = httpx.post(
        f"{served.url}/users/invitations",
        json={"email": first["email"], "role": "USER"},
        headers=served.token(second["email"]),
    )
    accepted = httpx.post(
        f"{served.url}/auth/invitations/accept",
        json={"invite_token": invited.json()["invite_token"]},
        headers=served.token(first["email"]),
    )
    assert accepted.status_code == 200, accepted.text
    page = new_page()
    sign_in(page, served.url, first["email"])
    chooser = page.get_by_role("form", name="Switch tenant")
    choices = chooser.get_by_label("Switch to tenant").locator("option").all_inner_texts()
    assert sorted(choices) == sorted(
        [f"Northwind ({first['slug']}) · ADMIN", f"Contoso ({second['slug']}) · USER"]
    )
    chooser.get_by_label("Switch to tenant").select_option(second["slug"])
    chooser.get_by_role("button", name="Switch").click()
    page.locator("#account .tenant", has_text=second["slug"]).wait_for()
    # Now a USER there: the administration panels are gone.
    assert "Members" not in page.locator("#nav a").all_inner_texts()
    assert not page.errors


def test_revoking_a_session_signs_the_other_tab_out(served: Served, new_page: Any) -> None:
    admin = served.register()
    laptop, phone = new_page(), new_page()
    sign_in(laptop, served.url, admin["email"])
    sign_in(phone, served.url, admin["email"])
    statuses: list[tuple[str, int]] = []
    phone.on("response", lambda r: statuses.append((r.url, r.status)))

    open_panel(laptop, "My sessions")
    sessions = laptop.get_by_role("list", name="Sessions")
    wait_count(sessions.get_by_role("listitem"), 2)
    other = sessions.get_by_role("listitem").filter(has_not_text="this device")
    other.get_by_role("button", name=re.compile("^Sign out")).click()
    laptop.locator(".flash", has_text="That device is signed out.").wait_for()
    wait_count(sessions.get_by_role("listitem"), 1)

    # The other tab's next API call gets 401, its refresh fails too: the sign-in form is back.
    phone.get_by_role("link", name="Roles").click()
    phone.get_by_role("heading", name="Sign in").wait_for()
    assert (f"{served.url}/roles", 401) in statuses
    assert (f"{served.url}/auth/refresh", 401) in statuses
    assert phone.locator("#nav").is_hidden()
    # The laptop is unaffected.
    open_panel(laptop, "Members")
    assert laptop.get_by_role("list", name="Members").is_visible()


def test_api_key_is_shown_once_and_its_audit_row_is_readable(served: Served, new_page: Any) -> None:
    admin = served.register()
    page = new_page()
    sign_in(page, served.url, admin["email"])
    open_panel(page, "API keys")
    create = page.get_by_role("form", name="Create an API key")
    create.get_by_label("Name").fill("ci deploys")
    create.get_by_label("products.read", exact=True).check()
    create.get_by_role("button", name="Create key").click()
    field = page.get_by_label(re.compile("shown once"))
    field.wait_for()
    key = field.input_value()
    assert key.startswith("tk_")
    assert httpx.get(f"{served.url}/products", headers={"X-API-Key": key}).status_code == 200
    assert page.get_by_role("list", name="API keys").get_by_text("ci deploys").is_visible()

    # Shown once: coming back to the panel does not show it again.
    open_panel(page, "Members")
    open_panel(page, "API keys")
    page.get_by_role("list", name="API keys").wait_for()
    assert key not in page.content()

    # The audit log's newest row is the key's creation.
    open_panel(page, "Audit log")
    events = page.get_by_role("list", name="Audit events")
    first = events.get_by_role("listitem").first
    first.wait_for()
    assert first.locator("code").inner_text() == "api_key.created"
    # Filtered by action, then paged.
    filters = page.get_by_role("form", name="Filter the audit log")
    filters.get_by_label("Action").fill("login.succeeded")
    filters.get_by_role("button", name="Apply filters").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('ol.audit code')].every(c => c.textContent === 'login.succeeded')"
    )


def test_api_errors_appear_next_to_their_control(served: Served, new_page: Any) -> None:
    admin = served.register()
    page = new_page()
    sign_in(page, served.url, admin["email"])

    # A 422 names the field: the message sits in that field's own slot.
    open_panel(page, "Audit log")
    filters = page.get_by_role("form", name="Filter the audit log")
    actor = filters.get_by_label("Actor (user id)")
    actor.fill("not-a-uuid")
    filters.get_by_role("button", name="Apply filters").click()
    slot = page.locator(f"#{actor.get_attribute('id')}-error")
    slot.wait_for()
    assert "uuid" in slot.inner_text().lower()
    assert actor.get_attribute("aria-invalid") == "true"

    # A 409 names no field: its detail is shown at the form that caused it.
    open_panel(page, "Roles")
    create = page.get_by_role("form", name="Create a role")
    create.get_by_label("Name").fill("ADMIN")
    create.get_by_label("Permissions").fill("products.read")
    create.get_by_role("button", name="Create role").click()
    error = create.locator(".form-error")
    error.wait_for()
    assert "Built-in roles cannot be redefined." in error.inner_text()

    # A row button's failure is shown right after that button.
    member = served.join(admin)
    open_panel(page, "Members")
    remove = page.get_by_role("button", name=f"Remove {member}")
    httpx.delete(
        f"{served.url}/users/{_me(served, member)['id']}", headers=served.token(admin["email"])
    ).raise_for_status()
    remove.click()  # arms it: nothing is sent yet
    assert remove.inner_text() == "Confirm removal"
    remove.click()
    inline = remove.locator("xpath=following-sibling::*[contains(@class,'inline-error')]")
    inline.wait_for()
    assert "No such member." in inline.inner_text()


def test_superadmin_suspends_and_resumes_a_tenant(served: Served, new_page: Any) -> None:
    brand = served.register()
    page = new_page()
    sign_in(page, served.url, SUPERADMIN[0], SUPERADMIN[1])
    open_panel(page, "Tenants")
    page.get_by_role("button", name=f"Suspend {brand['name']}").click()
    page.get_by_role("button", name=f"Resume {brand['name']}").wait_for()
    refused = httpx.post(f"{served.url}/auth/login", json={"email": brand["email"], "password": PASSWORD})
    assert refused.status_code == 403, refused.text
    page.get_by_role("button", name=f"Resume {brand['name']}").click()
    page.get_by_role("button", name=f"Suspend {brand['name']}").wait_for()
    assert _me(served, brand["email"])["tenant"]["slug"] == brand["slug"]


def test_plugin_panel_is_imported_and_rendered(served: Served, new_page: Any) -> None:
    admin = served.register()
    page = new_page()
    sign_in(page, served.url, admin["email"])
    open_panel(page, "Plugin hello")
    hello = page.locator(".plugin-hello")
    hello.wait_for()
    assert hello.inner_text() == f"Hello {admin['email']} from a plugin"
    assert httpx.get(f"{served.url}/console/assets/panels/reports.js").status_code == 200  # the API decides
    assert not page.errors


def test_swagger_ui_renders_with_no_request_leaving_the_host(served: Served, new_page: Any) -> None:
    page = new_page()
    requested: list[str] = []

    def record(route: Any) -> None:
        requested.append(route.request.url)
        route.continue_()

    page.route("**/*", record)
    page.goto(f"{served.url}/api-docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() > 20
    assert page.get_by_text("/auth/login").first.is_visible()
    assert requested, "nothing was recorded"
    foreign = [url for url in requested if not url.startswith(f"{served.url}/")]
    assert foreign == [], foreign


def test_keyboard_only_sign_in_with_visible_focus(served: Served, new_page: Any) -> None:
    admin = served.register()
    page = new_page()
    page.goto(f"{served.url}/console")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.name") == "email"
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.type(admin["email"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.locator("#nav:not([hidden])").wait_for()
    # The navigation links work from the keyboard; the panel's heading takes the focus.
    page.focus("#nav a[href='#api-keys']")
    page.keyboard.press("Enter")
    page.locator("#panel-api-keys[data-ready]").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "title-api-keys"


def test_two_factor_sign_in_shows_the_code_step(served: Served, new_page: Any) -> None:
    import pyotp

    admin = served.register()
    headers = served.token(admin["email"])
    setup = httpx.post(f"{served.url}/auth/2fa/totp/setup", headers=headers).json()
    code = pyotp.TOTP(setup["secret"]).now()
    confirmed = httpx.post(f"{served.url}/auth/2fa/totp/confirm", json={"code": code}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    recovery = confirmed.json()["recovery_codes"][0]

    page = new_page()
    page.goto(f"{served.url}/console")
    page.get_by_label("Email", exact=True).fill(admin["email"])
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    step = page.get_by_role("form", name="Second factor")
    step.get_by_label("Code").wait_for()
    assert page.get_by_label("Code").evaluate("e => e === document.activeElement")
    # A wrong code: the API's words next to the form, still on the code step.
    step.get_by_label("Code").fill("zzzzz-zzzzz")
    step.get_by_role("button", name="Verify").click()
    step.locator(".form-error").wait_for()
    assert step.locator(".form-error").inner_text()
    step.get_by_label("Code").fill(recovery)
    step.get_by_role("button", name="Verify").click()
    page.locator("#nav:not([hidden])").wait_for()
    assert admin["email"] in page.locator("#account").inner_text()


def test_sso_buttons_follow_the_providers_endpoint(served: Served, new_page: Any) -> None:
    # As the server answers: without federated sign-in (404) the SSO section stays hidden;
    # with it, the organisation form shows even when no platform provider is configured.
    plain = new_page()
    with plain.expect_response(lambda r: r.url.endswith("/auth/oidc/providers")) as answer:
        plain.goto(f"{served.url}/console")
    plain.get_by_role("heading", name="Sign in").wait_for()
    if answer.value.status == 404:
        plain.wait_for_timeout(300)
        assert plain.get_by_role("heading", name="Single sign-on").count() == 0
    else:
        plain.get_by_role("form", name="Sign in with your organisation's SSO").wait_for()

    # With it (the answer of GET /auth/oidc/providers stood in for at the browser):
    page = new_page()
    page.route(
        "**/auth/oidc/providers",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body='{"items": [{"name": "google", "authorize_url": "/auth/oidc/google/authorize"}]}',
        ),
    )
    page.goto(f"{served.url}/console")
    link = page.get_by_role("link", name="Sign in with google")
    link.wait_for()
    assert link.get_attribute("href") == "/auth/oidc/google/authorize?redirect_to=%2Fconsole"
    # A tenant without SSO: the server's answer is shown next to the slug field.
    sso = page.get_by_role("form", name="Sign in with your organisation's SSO")
    sso.get_by_label("Organisation (tenant slug)").fill("no-such-tenant")
    sso.get_by_role("button", name="Continue with SSO").click()
    sso.locator(".form-error").wait_for()
    assert page.url == f"{served.url}/console"


def test_slow_requests_show_the_progress_indicator(served: Served, new_page: Any) -> None:
    admin = served.register()
    page = new_page()
    sign_in(page, served.url, admin["email"])
    busy = page.locator("#busy")
    assert busy.is_hidden()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 900, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    page.locator("#nav a", has_text="Roles").click()
    busy.wait_for(state="visible")
    assert page.locator("main[aria-busy=true]").count() == 1
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    page.locator("#panel-roles[data-ready]").wait_for()
    busy.wait_for(state="hidden")
    assert page.locator("main[aria-busy]").count() == 0


def test_create_and_edit_a_custom_role(served: Served, new_page: Any) -> None:
    admin = served.register()
    page = new_page()
    sign_in(page, served.url, admin["email"])
    open_panel(page, "Roles")
    create = page.get_by_role("form", name="Create a role")
    create.get_by_label("Name").fill("auditor")
    create.get_by_label("Description").fill("Reads the audit log")
    create.get_by_label("Permissions").fill("audit.read")
    create.get_by_role("button", name="Create role").click()
    edit = page.get_by_role("form", name="Edit auditor")
    edit.wait_for()
    edit.get_by_label("Permissions of auditor").fill("audit.read, users.read")
    edit.get_by_role("button", name="Save").click()
    page.locator(".flash", has_text="Role auditor saved.").wait_for()
    roles = httpx.get(f"{served.url}/roles", headers=served.token(admin["email"])).json()["items"]
    assert {r["name"]: r["permissions"] for r in roles}["auditor"] == ["audit.read", "users.read"]
    # The new role is offered when inviting.
    open_panel(page, "Members")
    options = page.get_by_role("form", name="Invite a member").get_by_label("Role").locator("option")
    assert "auditor" in options.all_inner_texts()


def test_webhook_deliveries_and_a_retry_of_a_dead_one(served: Served, new_page: Any) -> None:
    from tests.conftest import free_port

    admin = served.register()
    headers = served.token(admin["email"])
    page = new_page()
    sign_in(page, served.url, admin["email"])
    open_panel(page, "Webhooks")
    create = page.get_by_role("form", name="Add a webhook endpoint")
    hook = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    create.get_by_label("URL").fill(hook)
    create.get_by_label("Events").fill("order.created")
    create.get_by_role("button", name="Add endpoint").click()
    secret = page.get_by_label(re.compile("Signing secret"))
    secret.wait_for()
    assert secret.input_value().startswith("whsec_")

    product = httpx.post(
        f"{served.url}/products", json={"sku": "TEE", "name": "Tee", "price": "9.99"}, headers=headers
    ).json()
    httpx.post(
        f"{served.url}/inventory/{product['id']}/adjustments",
        json={"delta": 5, "reason": "stock"},
        headers=headers,
    ).raise_for_status()
    httpx.post(
        f"{served.url}/orders",
        json={"items": [{"product_id": product["id"], "quantity": 1}]},
        headers=headers,
    ).raise_for_status()
    endpoint = httpx.get(f"{served.url}/webhooks", headers=headers).json()["items"][0]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = httpx.get(f"{served.url}/webhooks/{endpoint['id']}/deliveries", headers=headers).json()[
            "items"
        ]
        if found and found[0]["status"] == "dead":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the delivery did not die: {found}")

    show = page.get_by_role("button", name=f"Show deliveries of {hook}")
    show.click()
    deliveries = page.get_by_role("list", name="Deliveries")
    deliveries.get_by_text("dead").wait_for()
    retry = deliveries.get_by_role("button", name="Retry delivery order.created")
    with page.expect_response(lambda r: r.url.endswith("/requeue")) as requeued:
        retry.click()
    assert requeued.value.status == 200
    assert requeued.value.json()["status"] == "pending"
    # The list is fetched again (the retried delivery may already have died once more).
    page.get_by_role("list", name="Deliveries").wait_for()
    assert not page.errors


def test_enrol_and_remove_two_factor_from_the_console(served: Served, new_page: Any) -> None:
    import pyotp

    admin = served.register()
    page = new_page()
    sign_in(page, served.url, admin["email"])
    open_panel(page, "Two-factor sign-in")
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.get_by_label("Secret", exact=True)
    secret.wait_for()
    assert page.get_by_role("img", name="QR code of the authenticator secret").is_visible()
    confirm = page.get_by_role("form", name="Confirm the authenticator app")
    confirm.get_by_label("Code from the app").fill(pyotp.TOTP(secret.input_value()).now())
    confirm.get_by_role("button", name="Turn on").click()
    codes = page.get_by_role("list", name="Recovery codes")
    codes.wait_for()
    wait_count(codes.get_by_role("listitem"), 10)
    login = httpx.post(f"{served.url}/auth/login", json={"email": admin["email"], "password": PASSWORD})
    assert login.json()["mfa_required"] is True

    off = page.get_by_role("form", name="Turn two-factor sign-in off")
    off.get_by_label("Current code or password").fill("wrong password")
    off.get_by_role("button", name="Turn off").click()
    off.locator(".form-error").wait_for()
    off.get_by_label("Current code or password").fill(PASSWORD)
    off.get_by_role("button", name="Turn off").click()
    page.locator(".flash", has_text="Two-factor sign-in is off.").wait_for()
    login = httpx.post(f"{served.url}/auth/login", json={"email": admin["email"], "password": PASSWORD})
    assert "access_token" in login.json()
