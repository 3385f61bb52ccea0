"""The RBAC matrix: every guarded route of tenantkit and the example app, against every built-in role.

The route list is read from the app itself, so a new guarded route joins the
matrix without editing this file. Expectations come from the contract, not the
code: anonymous → 401; a role lacking the route's permissions → 403; a role holding
them gets past authorization (whatever the resource answers next: 200, 404, 422...).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.routing import BaseRoute

from tenantkit.admin import create_superadmin
from tenantkit.rbac.registry import PLATFORM_PERMISSIONS
from tenantkit.routing import walk_routes
from tests.example.conftest import Brand, Example
from tests.helpers import assert_problem

#: What USER holds in the example app (API.md).
USER_PERMISSIONS = {"products.read", "inventory.read", "orders.read", "orders.create", "files.read"}
RANK = {"USER": 1, "ADMIN": 2, "SUPER_ADMIN": 3}


def guarded_routes(routes: list[BaseRoute]) -> list[tuple[str, str, dict[str, Any]]]:
    found: list[tuple[str, str, dict[str, Any]]] = []
    for entry in walk_routes(routes):
        spec = entry.spec
        if spec.permissions or spec.roles:
            guard = {"permissions": list(spec.permissions), "roles": list(spec.roles), "any_of": spec.any_of}
            for method in sorted(set(entry.methods) - {"HEAD"}):
                found.append((method, entry.path, guard))
    return found


def allowed(role: str, guard: dict[str, Any]) -> bool:
    if guard.get("roles"):
        return RANK[role] >= min(RANK.get(r, 99) for r in guard["roles"])
    needed = set(guard["permissions"])
    if role == "SUPER_ADMIN":
        held = needed  # the platform tenant's SUPER_ADMIN inherits everything
    elif role == "ADMIN":
        held = needed - set(PLATFORM_PERMISSIONS)
    else:
        held = needed & USER_PERMISSIONS
    return bool(held) if guard.get("any_of") else held == needed


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: uuid.uuid4().hex, path)


async def test_every_guarded_route_against_every_role(example: Example, acme: Brand) -> None:
    await create_superadmin(example.kit, "root@example.com", "root-password-1")
    callers = {
        "USER": acme.user,
        "ADMIN": acme.admin,
        "SUPER_ADMIN": await example.login("root@example.com", "root-password-1"),
    }
    assert example.app is not None
    routes = guarded_routes(list(example.app.routes))
    paths = {path for _, path, _ in routes}
    # the matrix really covers both layers
    assert {"/products", "/orders", "/inventory", "/users", "/roles", "/admin/tenants", "/audit"} <= paths
    outcomes: list[tuple[str, str, str, int, bool]] = []
    for method, template, guard in routes:
        path = concrete(template)
        body = {} if method in {"POST", "PATCH", "PUT"} else None
        assert_problem(await example.client.request(method, path, json=body), 401)
        for role, headers in callers.items():
            response = await example.client.request(method, path, json=body, headers=headers)
            expected = allowed(role, guard)
            outcomes.append((role, method, template, response.status_code, expected))
            assert response.status_code < 500, (role, method, template, response.text)
    wrong = [o for o in outcomes if (o[3] == 403) == o[4] or o[3] == 401]
    assert wrong == [], wrong
