"""Real OpenID providers on loopback ports for the federation tests.

- ``mock_op``: ``oidc-provider-mock`` (Authlib's provider in a Flask app) served by
  werkzeug in a thread. Its authorization endpoint is driven without a browser:
  ``POST /oauth2/authorize?<the query we were redirected with>`` with the form
  field ``sub`` authorizes that subject; ``PUT /users/<sub>`` sets its claims.
  A test-only route rotates its signing key.
- ``mini_op``: a small provider (Starlette served by uvicorn, signing with
  joserfc) for what the mock cannot produce: a wrong ``nonce``, ``aud`` or
  ``iss``, an expired ID token, a key the provider never published. It checks
  PKCE S256 and the client secret like a real one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tenantkit import Settings, TenantKit
from tenantkit.mail import MemoryMailer
from tests.conftest import free_port, serve_in_thread
from tests.helpers import Api, serve

#: oidc-provider-mock runs Authlib's provider, which warns about its own legacy paths;
#: the filters are process-wide, so they must be relaxed for the provider's thread too.
AUTHLIB_LEGACY = [
    pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:authlib.jose module is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The httpx module is deprecated:DeprecationWarning"),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/federation/" in str(item.fspath).replace("\\", "/"):
            for mark in AUTHLIB_LEGACY:
                item.add_marker(mark)


CLIENT_ID = "tenantkit-test"
CLIENT_SECRET = "client-secret-" + "s" * 20
ALLOWED_APP = "https://app.example.com"


# --------------------------------------------------------------------------- #
# oidc-provider-mock
# --------------------------------------------------------------------------- #


@dataclass
class MockOP:
    issuer: str
    server: Any

    def set_user(self, sub: str, **claims: Any) -> None:
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims)
        assert response.status_code == 204, response.text

    def rotate_key(self) -> None:
        response = httpx.post(f"{self.issuer}/test/rotate-key")
        assert response.status_code == 204, response.text

    def kids(self) -> list[str]:
        return [key.get("kid", "") for key in httpx.get(f"{self.issuer}/jwks").json()["keys"]]


@pytest.fixture(scope="session")
def mock_op() -> Iterator[MockOP]:
    import werkzeug.serving

    with warnings.catch_warnings():  # the mock imports Authlib's legacy modules
        warnings.simplefilter("ignore")
        import flask
        from authlib import jose
        from oidc_provider_mock import app as make_app

    app = make_app()

    @app.post("/test/rotate-key")
    def rotate_key() -> tuple[str, int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flask.g.oidc_provider_mock_storage.jwk = jose.RSAKey.generate_key(is_private=True)
        return "", 204

    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield MockOP(f"http://127.0.0.1:{server.server_port}", server)
    finally:
        server.shutdown()
        thread.join(5)


# --------------------------------------------------------------------------- #
# A small provider of our own for the misbehaviours
# --------------------------------------------------------------------------- #


@dataclass
class MiniOP:
    """An OpenID provider whose ID tokens can be made wrong on purpose (``mode``)."""

    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    mode: str = "ok"
    claims: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0
    jwks_requests: int = 0
    userinfo_email: str = "mini@example.org"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["client_id"] == CLIENT_ID and q["response_type"] == "code"
        assert q["code_challenge_method"] == "S256" and q.get("nonce") and q.get("state")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
        }
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, 401)
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, 400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "mini-user",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "email": "mini@example.org",
            "email_verified": True,
            **self.claims,
        }
        key, header = self.key, {"alg": "RS256", "kid": self.key.kid}
        if self.mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif self.mode == "wrong_aud":
            claims["aud"] = "someone-else"
        elif self.mode == "wrong_iss":
            claims["iss"] = self.issuer + "-evil"
        elif self.mode == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 600
        elif self.mode == "forged_kid":
            key = RSAKey.generate_key(2048, parameters={"kid": "forged"})
            header = {"alg": "RS256", "kid": "forged"}
        elif self.mode == "alg_none":
            header = {"alg": "none"}
        elif self.mode == "multi_aud_no_azp":
            claims["aud"] = [CLIENT_ID, "other"]
        elif self.mode == "no_email":
            claims.pop("email"), claims.pop("email_verified")
        if self.mode == "alg_none":
            segments = [
                base64.urlsafe_b64encode(jwt_json(header)).rstrip(b"=").decode(),
                base64.urlsafe_b64encode(jwt_json(claims)).rstrip(b"=").decode(),
                "",
            ]
            id_token = ".".join(segments)
        else:
            id_token = jwt.encode(header, claims, key)
        return JSONResponse(
            {"access_token": "at-" + secrets.token_urlsafe(8), "token_type": "Bearer", "id_token": id_token}
        )

    async def userinfo(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Bearer at-"):
            return JSONResponse({"error": "invalid_token"}, 401)
        sub = self.claims.get("sub", "mini-user")
        return JSONResponse({"sub": sub, "email": self.userinfo_email, "email_verified": True})


def jwt_json(value: dict[str, Any]) -> bytes:
    import json

    return json.dumps(value).encode()


@pytest.fixture(scope="session")
def mini_op_server() -> Iterator[MiniOP]:
    op = MiniOP()
    port = free_port()
    op.issuer = f"http://127.0.0.1:{port}"
    with serve_in_thread(op.app(), port=port, lifespan="auto"):
        yield op


@pytest.fixture
def mini_op(mini_op_server: MiniOP) -> Iterator[MiniOP]:
    key = mini_op_server.key
    mini_op_server.mode = "ok"
    mini_op_server.claims = {}
    yield mini_op_server
    mini_op_server.mode = "ok"
    mini_op_server.claims = {}
    mini_op_server.key = key


# --------------------------------------------------------------------------- #
# The app under test and a "browser" driving the flow
# --------------------------------------------------------------------------- #


def provider_settings(mock_op: MockOP, mini_op: MiniOP) -> list[dict[str, Any]]:
    return [
        {"name": "mock", "issuer": mock_op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        {"name": "mini", "issuer": mini_op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    ]


@pytest.fixture
async def oidc_api(
    kit_factory: Callable[..., TenantKit],
    settings_factory: Callable[..., Settings],
    mock_op: MockOP,
    mini_op: MiniOP,
) -> AsyncIterator[Api]:
    """A served kit with the two providers configured (``mock`` and ``mini``)."""
    mailer = MemoryMailer()
    settings = settings_factory(
        oidc_providers=provider_settings(mock_op, mini_op), oidc_redirect_allowlist=[ALLOWED_APP]
    )
    kit = kit_factory(settings, mailer=mailer)
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        yield Api(client, kit, mailer)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def local_part(url: str) -> str:
    """Path and query of an absolute URL of the app (what the in-process client requests)."""
    parts = urlsplit(url)
    assert parts.netloc == "testserver", url
    return parts.path + ("?" + parts.query if parts.query else "")


async def authorize_at_mock(location: str, sub: str) -> str:
    """Drive the mock's authorization endpoint for ``sub``; the redirect back to the app."""
    async with httpx.AsyncClient() as browser:
        answer = await browser.post(location, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def authorize_at_mini(location: str) -> str:
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(location)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def start(api: Api, path: str, **kwargs: Any) -> httpx.Response:
    response = await api.client.get(path, **kwargs)
    assert response.status_code == 302, response.text
    return response


async def sign_in_mock(api: Api, sub: str, *, path: str = "/auth/oidc/mock/authorize") -> httpx.Response:
    """The whole flow through oidc-provider-mock: the callback's response."""
    started = await start(api, path)
    back = await authorize_at_mock(started.headers["location"], sub)
    return await api.client.get(local_part(back))


async def sign_in_mini(api: Api, *, path: str = "/auth/oidc/mini/authorize") -> httpx.Response:
    started = await start(api, path)
    back = await authorize_at_mini(started.headers["location"])
    return await api.client.get(local_part(back))
