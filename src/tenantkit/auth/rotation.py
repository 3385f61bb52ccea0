"""The refresh rotation's statements, built once.

One conditional ``UPDATE`` spends a refresh token only while everything it
stands on is valid (unspent, unexpired, not idle; session, user, tenant and
membership alive) and returns what the successor's access token needs; one
``INSERT`` stores the successor. On PostgreSQL both run as prepared statements
on the driver connection (:mod:`tenantkit.db.fastpath`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, Uuid, bindparam, exists, insert, literal_column, update

from tenantkit.db import fastpath
from tenantkit.db.base import UTCDateTime
from tenantkit.db.models import AuthSession, Membership, RefreshToken, Tenant, User

__all__ = ["MINT", "SPEND", "as_utc"]


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
