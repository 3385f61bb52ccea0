"""Hypothesis feeds random and mutated tokens and bodies; nothing answers 500.

Runs on SQLite and on PostgreSQL + Redis (where a NUL byte or an out-of-range
number used to reach the database). Strings include NUL and unpaired
surrogates, numbers go far beyond bigint. ``TENANTKIT_FUZZ_EXAMPLES`` sets the
examples per test (60 by default; the ``fuzz_long`` run uses more).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import Api

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
EXAMPLES = int(os.environ.get("TENANTKIT_FUZZ_EXAMPLES", "60"))

BODY_ROUTES = [
    "/auth/register",
    "/auth/login",
    "/auth/refresh",
    "/auth/switch-tenant",
    "/auth/invitations/accept",
    "/auth/password",
    "/auth/password-reset",
    "/auth/password-reset/confirm",
    "/users/invitations",
    "/roles",
]

#: Text a database cannot store is the interesting kind: NUL, lone surrogates, any code point.
hostile_text = (
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
    | st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "acme\x00", "\ufeff"])
    | st.text(max_size=40)
)
hostile_numbers = (
    st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30])
    | st.floats(allow_nan=False)
)
json_values = st.recursive(
    st.none() | st.booleans() | hostile_numbers | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "email",
        "password",
        "tenant_name",
        "invite_token",
        "refresh_token",
        "tenant",
        "token",
        "new_password",
        "current_password",
        "role",
        "name",
        "permissions",
        "tenant_id",
        "__proto__",
    ]
)
bodies = st.dictionaries(field_names, json_values, max_size=6) | json_values
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def mutate(token: str, data: Any) -> str:
    choice = data.draw(st.integers(0, 6))
    if choice == 0:
        index = data.draw(st.integers(0, len(token) - 1))
        return token[:index] + data.draw(st.characters(codec="ascii")) + token[index + 1 :]
    if choice == 1:
        return token[: data.draw(st.integers(0, len(token)))]
    if choice == 2:
        parts = token.split(".")
        return ".".join(data.draw(st.permutations(parts)))
    if choice == 3:
        return token + data.draw(st.text(max_size=20))
    if choice == 4:
        return token.replace(".", data.draw(st.sampled_from(["", "..", " ", "%2e"])), 1)
    if choice == 5:
        return data.draw(st.text(max_size=200))
    return token.upper()


async def _tokens(api: Api) -> dict[str, str]:
    if "fuzz@example.com" not in api.passwords:
        await api.register("fuzz@example.com")
    return await api.login("fuzz@example.com")


@FUZZ
@given(data=st.data())
async def test_mutated_access_tokens_never_500(api: Api, data: Any) -> None:
    tokens = await _tokens(api)
    bad = mutate(tokens["access_token"], data)
    try:
        header = ("Bearer " + bad).encode("latin-1")
    except UnicodeEncodeError:
        return
    response = await api.client.get("/auth/me", headers={"Authorization": header})
    assert response.status_code in (200, 401), response.text
    # Leading/trailing spaces and tabs are optional whitespace of the header (RFC 9110): HTTP
    # clients strip them, and so does the server; anything else that differs must be refused.
    if bad.strip(" \t") != tokens["access_token"]:
        assert response.status_code == 401


@FUZZ
@given(data=st.data())
async def test_mutated_refresh_tokens_never_500(api: Api, data: Any) -> None:
    tokens = await _tokens(api)
    bad = mutate(tokens["refresh_token"], data)
    response = await api.client.post("/auth/refresh", json={"refresh_token": bad})
    assert response.status_code in (200, 401, 422), response.text


@FUZZ
@given(route=st.sampled_from(BODY_ROUTES), body=bodies, authenticated=st.booleans())
async def test_random_bodies_never_500(api: Api, route: str, body: Any, authenticated: bool) -> None:
    headers = Api.bearer(await _tokens(api)) if authenticated else {}
    response = await api.client.post(
        route, content=json.dumps(body), headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code < 500, (route, body, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


@FUZZ
@given(route=st.sampled_from(BODY_ROUTES), raw=st.binary(max_size=300))
async def test_random_bytes_never_500(api: Api, route: str, raw: bytes) -> None:
    response = await api.client.post(route, content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500, (route, raw, response.text)


def _operations_with_bodies(api: Api) -> list[tuple[str, str, list[str]]]:
    """Every tenantkit operation that takes a JSON body, read from its OpenAPI document."""
    import re
    import uuid

    from tenantkit.openapi import openapi_document

    document = openapi_document(api.kit.build_app().routes, title="fuzz", version="1")
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"].get("schema", {})
            if "$ref" in schema:
                schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            concrete = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)
            found.append((method.upper(), concrete, sorted(schema.get("properties", {}))))
    return found


@FUZZ
@given(data=st.data(), authenticated=st.booleans())
async def test_every_documented_body_survives_random_json(api: Api, data: Any, authenticated: bool) -> None:
    operations = _operations_with_bodies(api)
    assert {"/auth/login", "/roles", "/users/invitations"} <= {path for _, path, _ in operations}
    assert any(method == "PATCH" for method, _, _ in operations)
    method, path, fields = data.draw(st.sampled_from(operations))
    names = st.sampled_from(fields) if fields else field_names
    body = data.draw(st.dictionaries(names, json_values, max_size=6) | json_values)
    headers = Api.bearer(await _tokens(api)) if authenticated else {}
    response = await api.client.request(
        method, path, content=json.dumps(body), headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code < 500, (method, path, body, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
