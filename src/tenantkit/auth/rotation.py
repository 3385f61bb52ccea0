"""The refresh rotation's statements, built once.

One conditional ``UPDATE`` spends a refresh token only while everything it
stands on is valid (unspent, unexpired, not idle; session, user, tenant and
membership alive) and returns what the successor's access token needs; one
``INSERT`` stores the successor. On PostgreSQL both run as prepared statements
on the driver connection (:mod:`tenantkit.db.fastpath`).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import String, Table, Uuid, bindparam, exists, insert, literal_column, select, update

from tenantkit.auth import refresh as rt
from tenantkit.auth.tokens import AccessTokens, TokenPair
from tenantkit.db import fastpath
from tenantkit.db.base import UTCDateTime, utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import AuthSession, Membership, RefreshToken, Tenant, User
from tenantkit.errors import ExpiredTokenError, InvalidTokenError, TenantForbiddenError, TokenReuseError
from tenantkit.events import Events
from tenantkit.observability.metrics import Metrics
from tenantkit.settings import Settings

logger = logging.getLogger("tenantkit.auth")

__all__ = ["MINT", "SPEND", "Rotation", "as_utc"]


def _session_fact(expression: str, type_: Any) -> Any:
    # Written out (fixed text, no input) because SQLite renders RETURNING columns
    # unqualified, which would make generated correlated subqueries ambiguous.
    return literal_column(
        f"(SELECT {expression} FROM auth_sessions AS s "  # noqa: S608 - fixed fragments only
        "LEFT JOIN memberships AS m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id "
        "WHERE s.id = refresh_tokens.session_id)",
        type_,
    )


_SESSION_FACTS = (
    _session_fact("s.user_id", Uuid()),
    _session_fact("s.tenant_id", Uuid()),
    _session_fact("s.expires_at", UTCDateTime()),
    _session_fact("m.role", String()),
)


def _spend_statements() -> tuple[Any, Any]:
    """The rotation's ``UPDATE``: it spends a token only while everything it stands on is valid.

    Returns the portable form (the session's validity as one ``EXISTS``; SQLite can
    return only the updated table's columns, so the session's facts come from
    subqueries) and PostgreSQL's ``UPDATE ... FROM`` join, which returns them directly.
    """
    now = bindparam("b_now", type_=UTCDateTime())
    tokens = cast("Table", RefreshToken.__table__)
    token_ok = (
        tokens.c.digest == bindparam("b_digest"),
        tokens.c.spent_at.is_(None),
        tokens.c.expires_at > now,
        tokens.c.created_at > bindparam("b_idle_since", type_=UTCDateTime()),
    )
    session_ok = (
        AuthSession.id == tokens.c.session_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > now,
        User.id == AuthSession.user_id,
        User.is_active.is_(True),
        Tenant.id == AuthSession.tenant_id,
        Tenant.status == "active",
        Membership.tenant_id == AuthSession.tenant_id,
        Membership.user_id == AuthSession.user_id,
    )
    spend = update(tokens).values(spent_at=now, successor_id=bindparam("b_successor_id"))
    portable = spend.where(*token_ok, exists().where(*session_ok)).returning(
        tokens.c.session_id, *_SESSION_FACTS
    )
    joined = spend.where(*token_ok, *session_ok).returning(
        tokens.c.session_id,
        AuthSession.user_id,
        AuthSession.tenant_id,
        AuthSession.expires_at,
        Membership.role,
    )
    return portable, joined


#: Built once: the rotation's two statements.
_SPEND_PORTABLE, _SPEND_JOINED = _spend_statements()
SPEND = fastpath.FastStatement(_SPEND_PORTABLE, variants={"postgresql": _SPEND_JOINED})
MINT = fastpath.FastStatement(
    insert(cast("Table", RefreshToken.__table__)),
    column_keys=["id", "session_id", "digest", "created_at", "expires_at", "sealed_pair"],
)


def as_utc(value: Any, dialect: Any) -> Any:
    """A timestamp read through a subquery or aggregate (no column type applied) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, dialect)


class Rotation:
    """Refresh rotation with reuse detection (mixed into :class:`~tenantkit.auth.sessions.Sessions`)."""

    settings: Settings
    db: Database
    tokens: AccessTokens
    events: Events
    metrics: Metrics

    def _claims(self, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> dict[str, Any]:
        raise NotImplementedError

    async def revoke(self, session_ids: list[uuid.UUID], *, reason: str, user_id: uuid.UUID | None) -> None:
        raise NotImplementedError

    async def refresh(self, token: str, *, ip: str | None) -> TokenPair:
        """Rotate ``token``: spend it and return its successor (race-free).

        Raises:
            InvalidTokenError: unknown, expired, or its session ended.
            TokenReuseError: a spent token outside the grace window; the session is revoked.
        """
        if not rt.looks_like_refresh_token(token):
            raise InvalidTokenError("Invalid refresh token.")
        digest = rt.digest(token)
        now = utcnow()
        successor = rt.new_refresh_token()
        successor_id = uuid.uuid4()
        async with fastpath.transaction(self.db) as run:
            row = await run.fetchrow(
                SPEND,
                {
                    "b_digest": digest,
                    "b_now": now,
                    "b_idle_since": now - timedelta(seconds=self.settings.session_idle_timeout),
                    "b_successor_id": successor_id,
                },
            )
            if row is not None:
                session_id, user_id, tenant_id, session_expires, role_name = row
                access, expires_in = self.tokens.issue(
                    user_id=user_id,
                    tenant_id=tenant_id,
                    session_id=session_id,
                    role=role_name,
                    extra_claims=self._claims(user_id, tenant_id, role_name),
                )
                sealed = None
                if self.settings.refresh_grace_seconds:
                    pair = {"rt": successor, "at": access, "exp": now.timestamp() + expires_in}
                    sealed = rt.seal(token, json.dumps(pair))
                await run.execute(
                    MINT,
                    {
                        "id": successor_id,
                        "session_id": session_id,
                        "digest": rt.digest(successor),
                        "created_at": now,
                        "expires_at": min(
                            now + timedelta(seconds=self.settings.refresh_token_ttl), session_expires
                        ),
                        "sealed_pair": sealed,
                    },
                )
                return TokenPair(access, expires_in, successor, session_id)
        return await self._refresh_rejected(token, digest, now, ip)

    async def _refresh_rejected(self, token: str, digest: bytes, now: datetime, ip: str | None) -> TokenPair:
        """Classify a refresh that did not rotate: duplicate in grace, reuse, or an ended session."""
        async with self.db.session() as session:
            row = await session.scalar(select(RefreshToken).where(RefreshToken.digest == digest))
            if row is None:
                raise InvalidTokenError("Invalid refresh token.")
            auth_session = await session.get(AuthSession, row.session_id)
            successor = await session.get(RefreshToken, row.successor_id) if row.successor_id else None
            tenant = await session.get(Tenant, auth_session.tenant_id) if auth_session else None
        assert auth_session is not None
        if auth_session.revoked_at is not None:
            await self._reuse_detected(auth_session, "revoked", ip, revoke=False)
            raise InvalidTokenError("The session has ended.")
        if row.spent_at is None:
            idle = timedelta(seconds=self.settings.session_idle_timeout)
            if row.expires_at <= now or auth_session.expires_at <= now or row.created_at + idle <= now:
                await self._reuse_detected(auth_session, "expired", ip, revoke=False)
                raise ExpiredTokenError("The refresh token expired.")
            if tenant is None or tenant.status != "active":
                raise TenantForbiddenError("This tenant is suspended.")
            raise InvalidTokenError("The session has ended.")
        grace = self.settings.refresh_grace_seconds
        sealed = successor.sealed_pair if successor is not None else None
        if grace and sealed and (now - row.spent_at).total_seconds() <= grace:
            opened = rt.open_box(token, sealed)
            if opened is not None:
                pair = json.loads(opened)
                expires_in = int(pair["exp"] - now.timestamp())
                if expires_in > 0:
                    return TokenPair(pair["at"], expires_in, pair["rt"], auth_session.id)
        await self._reuse_detected(auth_session, "spent", ip, revoke=True)
        raise TokenReuseError("This refresh token was already used; the session has been revoked.")

    async def _reuse_detected(
        self, auth_session: AuthSession, classification: str, ip: str | None, *, revoke: bool
    ) -> None:
        if revoke:
            await self.revoke([auth_session.id], reason="token_reuse", user_id=auth_session.user_id)
            self.metrics.token_reuse.inc()
            logger.warning(
                "refresh token reuse detected; session revoked",
                extra={"session_id": str(auth_session.id), "classification": classification},
            )
        await self.events.emit(
            "on_token_reuse",
            user_id=str(auth_session.user_id),
            session_id=str(auth_session.id),
            classification=classification,
            ip=ip,
        )
        self.events.audit(
            "token.reuse",
            tenant_id=auth_session.tenant_id,
            actor_id=auth_session.user_id,
            ip=ip,
            target=str(auth_session.id),
            data={"classification": classification, "revoked": revoke},
        )
