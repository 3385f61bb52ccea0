"""An OpenID Connect relying party: discovery, the authorization URL, the code exchange, the ID token.

Built on Authlib's OAuth 2.0 and OpenID Connect pieces (request preparation,
PKCE S256, client authentication, ``CodeIDToken`` claim rules) and on joserfc
(Authlib's JOSE engine) for signatures; nothing here parses or verifies JOSE
by hand.

- The discovery document (``{issuer}/.well-known/openid-configuration``) is
  fetched once and cached; its ``issuer`` must equal the configured one.
- The JWKS is cached too. A token signed by a key the cache does not hold (an
  unknown ``kid``, or a bad signature on a token without ``kid``) makes the
  client fetch the JWKS again, at most once per issuer every
  ``jwks_refetch_interval`` seconds, and try once more: a provider rotating its
  key is followed, a forger cannot make the server hammer the provider.
- The ID token must be signed with an asymmetric algorithm the provider
  announces; ``iss`` equal to the issuer, ``aud`` holding the client id (and
  ``azp`` equal to it when there are several audiences), ``exp`` in the future
  and ``iat`` not in it (``leeway`` seconds of clock skew), ``nonce`` equal to
  the flow's.
- Providers a tenant configured (``guarded``) are fetched through the SSRF
  guard: every URL is checked, its host resolved and checked, and the
  connection pinned to the checked addresses (no DNS rebinding). Platform
  providers from settings are trusted.

Every failure raises :class:`OidcError` (400, problem type ``.../oidc-failed``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tenantkit.errors import OidcError
from tenantkit.security.ssrf import (
    IPAddress,
    UnsafeURLError,
    normalize_host,
    resolve_and_check,
    validate_url,
)

with warnings.catch_warnings():  # Authlib flags its own legacy modules; none of them is used here
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.oauth2.auth import encode_client_secret_basic, encode_client_secret_post  # type: ignore[import-untyped]
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request  # type: ignore[import-untyped]
    from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
    from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "OidcClient",
    "OidcError",
    "OidcProvider",
]

logger = logging.getLogger("tenantkit.federation")

#: Signature algorithms accepted on ID tokens (never ``none``, never a shared secret).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_RESPONSE_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class OidcProvider:
    """One OpenID Connect provider as the client talks to it.

    Attributes:
        key: What ``user_identities.provider`` records: ``oidc:<name>`` or ``sso:<tenant id>``.
        name: The name in URLs and hooks (the settings name, or the tenant's slug).
        issuer: The issuer URL (no trailing slash).
        client_id: This application's client id at the provider.
        client_secret: Its secret (never in ``repr``).
        scopes: Requested scopes (``openid`` always).
        guarded: Fetch through the SSRF guard (a tenant chose the URL).
    """

    key: str
    name: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    guarded: bool = False


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to ``host`` only, and only at the addresses the SSRF guard approved."""

    def __init__(self, host: str, addresses: Iterable[IPAddress]) -> None:
        self.host = normalize_host(host)
        self.addresses = tuple(addresses)
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if normalize_host(host) != self.host:
            raise httpcore.ConnectError("refusing to connect to a host that was not checked")
        error: Exception = httpcore.ConnectError("no checked address")
        for address in self.addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _first(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not value:
        raise OidcError(f"The provider's discovery document has no usable {name!r}.")
    return value


class OidcClient:
    """Talks to OpenID Connect providers over HTTP (``httpx``) with caches of their metadata and keys.

    Args:
        timeout: Seconds for each HTTP exchange with a provider.
        allow_hosts: Hosts a guarded (tenant-chosen) provider may have even
            though they are private or loopback (``TENANTKIT_SSO_ALLOW_HOSTS``).
        leeway: Seconds of clock skew tolerated on ``exp`` and ``iat``.
        metadata_ttl: Seconds discovery documents and JWKS are cached.
        jwks_refetch_interval: Least seconds between two forced JWKS fetches of one issuer.
        transport: An ``httpx`` transport for unguarded providers (tests).
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        allow_hosts: Iterable[str] = (),
        leeway: int = 30,
        metadata_ttl: float = 3600.0,
        jwks_refetch_interval: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_hosts = tuple(allow_hosts)
        self.leeway = leeway
        self.metadata_ttl = metadata_ttl
        self.jwks_refetch_interval = jwks_refetch_interval
        self.transport = transport
        self._metadata: dict[str, tuple[dict[str, Any], float]] = {}
        self._jwks: dict[str, tuple[dict[str, Any], float]] = {}
        self._forced: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- HTTP ------------------------------------------------------------- #

    async def _client(self, provider: OidcProvider, url: str) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.timeout)
        if not provider.guarded:
            return httpx.AsyncClient(timeout=timeout, transport=self.transport, follow_redirects=False)
        try:
            checked = validate_url(url, self.allow_hosts)
            addresses = await resolve_and_check(checked.host, checked.port, self.allow_hosts)
        except (UnsafeURLError, OSError):
            raise OidcError("The identity provider's address is not allowed or does not resolve.") from None
        transport = httpx.AsyncHTTPTransport()
        transport._pool = httpcore.AsyncConnectionPool(  # connect only to the checked addresses
            ssl_context=httpx.create_ssl_context(), network_backend=_PinnedBackend(checked.host, addresses)
        )
        return httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)

    async def _request(
        self,
        provider: OidcProvider,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        content: str | None = None,
        accept_errors: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """One exchange with the provider: a JSON object back, size-capped; anything else raises 400."""
        try:
            async with (
                await self._client(provider, url) as client,
                client.stream(method, url, headers=dict(headers or {}), content=content) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise OidcError(f"The identity provider's {what} answer is too large.")
                status = response.status_code
        except httpx.HTTPError as exc:
            logger.warning("oidc %s request to %s failed: %s", what, provider.key, type(exc).__name__)
            raise OidcError(f"The identity provider could not be reached ({what}).") from None
        if (status >= 400 and not accept_errors) or not 200 <= status < 500:
            raise OidcError(f"The identity provider's {what} endpoint answered {status}.")
        try:
            import orjson

            data = orjson.loads(bytes(body))
        except ValueError:
            raise OidcError(f"The identity provider's {what} answer is not JSON.") from None
        if not isinstance(data, dict):
            raise OidcError(f"The identity provider's {what} answer is not a JSON object.")
        return status, data

    def _lock(self, issuer: str) -> asyncio.Lock:
        lock = self._locks.get(issuer)
        if lock is None:
            lock = self._locks[issuer] = asyncio.Lock()
        return lock

    # -- discovery and keys ------------------------------------------------ #

    async def metadata(self, provider: OidcProvider) -> dict[str, Any]:
        """The provider's discovery document (cached ``metadata_ttl`` seconds)."""
        cached = self._metadata.get(provider.issuer)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self._lock(provider.issuer):
            cached = self._metadata.get(provider.issuer)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            _, document = await self._request(
                provider, "GET", provider.issuer + "/.well-known/openid-configuration", what="discovery"
            )
            announced = document.get("issuer")
            # Exact, but for a trailing slash some providers keep (the ID tokens must then carry it too).
            if not isinstance(announced, str) or announced.rstrip("/") != provider.issuer.rstrip("/"):
                raise OidcError("The discovery document names another issuer.")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                _first(document, name)
            self._metadata[provider.issuer] = (document, time.monotonic() + self.metadata_ttl)
            return document

    async def _fetch_jwks(self, provider: OidcProvider) -> dict[str, Any]:
        document = await self.metadata(provider)
        _, jwks = await self._request(provider, "GET", _first(document, "jwks_uri"), what="JWKS")
        if not isinstance(jwks.get("keys"), list):
            raise OidcError("The provider's JWKS has no keys.")
        self._jwks[provider.issuer] = (jwks, time.monotonic() + self.metadata_ttl)
        return jwks

    async def jwks(self, provider: OidcProvider, *, force: bool = False) -> dict[str, Any]:
        """The provider's public keys (cached); ``force`` refetches, at most once per interval."""
        async with self._lock(provider.issuer + "#jwks"):
            cached = self._jwks.get(provider.issuer)
            now = time.monotonic()
            if force:
                if now - self._forced.get(provider.issuer, -1e9) < self.jwks_refetch_interval:
                    return cached[0] if cached else await self._fetch_jwks(provider)
                self._forced[provider.issuer] = now
                return await self._fetch_jwks(provider)
            if cached is not None and cached[1] > now:
                return cached[0]
            return await self._fetch_jwks(provider)

    # -- the flow ------------------------------------------------------------ #

    async def authorization_url(
        self, provider: OidcProvider, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        """Where to send the browser: code flow with ``state``, ``nonce`` and PKCE S256."""
        document = await self.metadata(provider)
        url: str = prepare_grant_uri(
            _first(document, "authorization_endpoint"),
            client_id=provider.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(provider.scopes),
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def exchange(
        self, provider: OidcProvider, *, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        """Trade the authorization code (with the PKCE verifier and the client secret) for tokens."""
        document = await self.metadata(provider)
        token_url = _first(document, "token_endpoint")
        body: str = prepare_token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        encode = (
            encode_client_secret_basic
            if "client_secret_basic" in methods or "client_secret_post" not in methods
            else encode_client_secret_post
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        _, headers, body = encode(_ClientCredentials(provider), "POST", token_url, headers, body)
        status, token = await self._request(
            provider, "POST", token_url, what="token", headers=headers, content=body, accept_errors=True
        )
        if status >= 400 or "error" in token:
            error = str(token.get("error", status))[:64]
            raise OidcError(f"The identity provider refused the code ({error}).", provider_error=error)
        if not isinstance(token.get("id_token"), str):
            raise OidcError("The identity provider returned no ID token.")
        return token

    async def id_token_claims(
        self, provider: OidcProvider, token: Mapping[str, Any], *, nonce: str
    ) -> dict[str, Any]:
        """The ID token's claims once its signature and claims are valid (see the module doc)."""
        document = await self.metadata(provider)
        announced = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in announced if alg in ASYMMETRIC_ALGORITHMS]
        if not algorithms:
            raise OidcError("The provider signs ID tokens with no algorithm this server accepts.")
        registry = JWSRegistry(algorithms=algorithms)
        raw = str(token["id_token"])
        try:
            cached = KeySet.import_key_set(await self.jwks(provider))  # type: ignore[arg-type]
            decoded = jwt.decode(raw, cached, registry=registry)
        except (InvalidKeyIdError, BadSignatureError, ValueError):
            # A key the cache does not hold: the provider may have rotated. Refetch (bounded) and retry once.
            try:
                keys = KeySet.import_key_set(await self.jwks(provider, force=True))  # type: ignore[arg-type]
                decoded = jwt.decode(raw, keys, registry=registry)
            except (JoseError, ValueError, TypeError, KeyError):
                raise OidcError("The ID token's signature does not verify.") from None
        except (JoseError, TypeError, KeyError):
            raise OidcError("The ID token is malformed or signed with a refused algorithm.") from None
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": document["issuer"]},
            "aud": {"essential": True, "value": provider.client_id},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "sub": {"essential": True},
        }
        params = {"nonce": nonce, "client_id": provider.client_id}
        if isinstance(token.get("access_token"), str):
            params["access_token"] = token["access_token"]
        claims = CodeIDToken(decoded.claims, decoded.header, options, params)
        try:
            claims.validate(leeway=self.leeway)
        except JoseError as exc:
            name = getattr(exc, "claim", None) or getattr(exc, "error", "claims")
            raise OidcError(f"The ID token is not valid ({name}).") from None
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcError("The ID token is not valid (nonce).")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise OidcError("The ID token is not valid (sub).")
        return dict(claims)

    async def userinfo(self, provider: OidcProvider, access_token: str, *, subject: str) -> dict[str, Any]:
        """The userinfo claims (when the ID token lacks the email); ``sub`` must match the ID token's."""
        document = await self.metadata(provider)
        endpoint = document.get("userinfo_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            return {}
        _, info = await self._request(
            provider, "GET", endpoint, what="userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
        if info.get("sub") != subject:
            raise OidcError("The userinfo answer is about another subject.")
        return info

    def forget(self, issuer: str | None = None) -> None:
        """Drop cached metadata and keys (of one issuer, or all)."""
        for cache in (self._metadata, self._jwks, self._forced):
            if issuer is None:
                cache.clear()
            else:
                cache.pop(issuer, None)


def same_issuer(expected: str, given: str | None) -> bool:
    """Whether an ``iss`` response parameter (RFC 9207), when present, names ``expected``."""
    if given is None:
        return True
    return hmac.compare_digest(given.rstrip("/").encode(), expected.rstrip("/").encode())


def redirect_origin(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL, lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


class _ClientCredentials:
    """What Authlib's client-authentication encoders read from a client."""

    def __init__(self, provider: OidcProvider) -> None:
        self.client_id = provider.client_id
        self.client_secret = provider.client_secret
