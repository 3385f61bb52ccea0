"""The server-side record of a sign-in in progress, bound to the browser that started it.

``begin`` stores ``{nonce, code_verifier, provider, redirect_to, mode, user
id, tenant}`` in the kit's store under a keyed digest of a fresh ``state``
(``oidc_flow_ttl`` seconds), together with the digest of a random
browser-binding value the caller puts in an HttpOnly cookie. ``finish`` takes
the record out (read, then delete: only the caller whose delete removed it
wins, so a replayed ``state`` or ``code`` finds nothing) and requires the same
cookie. A forged, expired, replayed or foreign ``state`` raises
:class:`~tenantkit.federation.oidc.OidcError`.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Literal

from tenantkit.digests import keyed_digest
from tenantkit.federation.oidc import OidcError
from tenantkit.stores.base import Store

__all__ = ["BINDING_COOKIE", "Flow", "FlowStore"]

#: The browser-binding cookie (``SameSite=Lax``: it must come back on the provider's redirect).
BINDING_COOKIE = "tk_oidc"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


@dataclass(frozen=True, slots=True)
class Flow:
    """A sign-in (or link) started and not finished yet."""

    provider: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    redirect_to: str | None = None
    mode: Literal["signin", "link", "sso"] = "signin"
    user_id: str | None = None
    tenant_id: str | None = None
    session_id: str | None = None
    binding: str = ""


class FlowStore:
    """Flows in the kit's store, single use, expiring.

    Args:
        store: The kit's store (Redis in a deployment: any instance may finish a flow).
        key: A server key the store keys and bindings are digested with.
        ttl: Seconds a flow stays open (``TENANTKIT_OIDC_FLOW_TTL``).
    """

    def __init__(self, store: Store, key: bytes, *, ttl: int = 600) -> None:
        self.store = store
        self.key = key
        self.ttl = ttl

    def _key(self, state: str) -> str:
        return "oidc:{f:" + keyed_digest(self.key, state).hex() + "}"

    def _binding(self, value: str) -> str:
        return keyed_digest(self.key, "binding:" + value).hex()

    @staticmethod
    def binding_value(current: str | None) -> str:
        """The browser's binding value: the one it already holds (parallel tabs), or a fresh one."""
        if current is not None and _TOKEN.match(current):
            return current
        return secrets.token_urlsafe(32)

    async def begin(self, flow: Flow, binding: str) -> str:
        """Store ``flow`` bound to ``binding``; the new ``state``."""
        state = secrets.token_urlsafe(32)
        record = asdict(flow) | {"binding": self._binding(binding)}
        await self.store.set(self._key(state), json.dumps(record).encode(), ttl=self.ttl)
        return state

    async def finish(self, state: str | None, binding: str | None) -> Flow:
        """The flow of ``state`` (spent now) when ``binding`` is the browser's; else 400."""
        if not state or not _TOKEN.match(state):
            raise OidcError("Unknown or expired sign-in (state).")
        key = self._key(state)
        raw = await self.store.get(key)
        if raw is None or not await self.store.delete(key):  # single use, even under a race
            raise OidcError("Unknown, expired or already used sign-in (state).")
        flow = Flow(**json.loads(raw))
        if binding is None or not _TOKEN.match(binding):
            raise OidcError("This sign-in was started in another browser (binding cookie missing).")
        if not hmac.compare_digest(flow.binding.encode(), self._binding(binding).encode()):
            raise OidcError("This sign-in was started in another browser (binding cookie mismatch).")
        return flow
