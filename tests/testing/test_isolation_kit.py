"""The isolation kit finds a leak in a deliberately leaky app, and none in a sound one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.applications import Starlette

from tenantkit.testing import IsolationKit, TenantPair
from tests.testing.leaky_app import create_app


@pytest.fixture(params=[None])
def leak(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def tenantkit_app_factory(leak: str | None) -> Callable[[], Starlette]:
    """The user's override: build the notes app, leaky as the test asks."""
    return lambda: create_app(leak=leak)


async def test_a_sound_app_has_no_leak(tenantkit_isolation: IsolationKit) -> None:
    report = await tenantkit_isolation.check()

    report.assert_clean()
    assert "POST /notes" in report.created
    assert {"GET /notes", "GET /notes/{id}", "DELETE /notes/{id}"} <= set(report.replayed)
    print(report.summary())
    assert not [key for key in report.untested if "notes" in key]
    assert report.b_ids >= 1


@pytest.mark.parametrize("leak", ["item"], indirect=True)
async def test_a_route_that_forgets_the_tenant_filter_is_reported(tenantkit_isolation: IsolationKit) -> None:
    report = await tenantkit_isolation.check()

    assert not report.ok
    routes = {(leak.method, leak.route) for leak in report.leaks}
    assert routes == {("GET", "/notes/{id}")}, report.summary()
    assert any("answered tenant A on tenant B's resource" in leak.reason for leak in report.leaks)
    assert any("tenant B's data" in leak.reason for leak in report.leaks)
    with pytest.raises(AssertionError, match=r"LEAK GET /notes/"):
        report.assert_clean()


@pytest.mark.parametrize("leak", ["list"], indirect=True)
async def test_a_list_showing_other_tenants_rows_is_reported(tenantkit_isolation: IsolationKit) -> None:
    report = await tenantkit_isolation.check()

    leaks = [leak for leak in report.leaks if leak.route == "/notes" and leak.method == "GET"]
    assert leaks, report.summary()
    assert "tenant B's data" in leaks[0].reason


@pytest.mark.parametrize("leak", ["delete"], indirect=True)
async def test_a_delete_reaching_another_tenant_is_reported(
    tenantkit_isolation: IsolationKit, tenantkit_tenants: TenantPair
) -> None:
    report = await tenantkit_isolation.check()

    assert {(leak.method, leak.route) for leak in report.leaks} == {("DELETE", "/notes/{id}")}, (
        report.summary()
    )


async def test_skipped_routes_are_not_replayed(tenantkit_isolation: IsolationKit) -> None:
    report = await tenantkit_isolation.check(skip=["* /notes/{id}", "/auth/*"])

    assert "GET /notes/{id}" not in report.replayed
    assert not [key for key in report.replayed if key.split(" ", 1)[1].startswith("/auth/")]
    assert "GET /notes" in report.replayed
