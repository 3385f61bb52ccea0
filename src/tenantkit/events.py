"""``Events``: the one fan-out of what happened: plugin hooks, the audit trail, the security log.

Features receive an ``Events`` and never reach for the kit: ``await
events.emit("on_login", ...)`` calls the ``tenantkit_on_login`` hook (awaiting
async implementations); ``events.audit(...)`` records a tenant's audit row;
``events.security(...)`` records what happened to nobody's tenant (failed
sign-ins, lockouts): the platform's security log, which no tenant reads.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol

import pluggy

from tenantkit.context import current_client_ip, current_principal, current_request_id
from tenantkit.plugins.manager import call_event

__all__ = ["NIL_TENANT", "AuditSink", "Events"]

audit_logger = logging.getLogger("tenantkit.audit")
security_logger = logging.getLogger("tenantkit.security")

#: The tenant id of rows that belong to no tenant (the platform's security log, ...).
NIL_TENANT = uuid.UUID(int=0)


class AuditSink(Protocol):
    """Where audit events go (``tenantkit.audit.AuditLog`` in the kit)."""

    def record(self, event: dict[str, Any]) -> None:
        """Take one event; never block."""


Spawn = Callable[[Coroutine[Any, Any, Any]], Any]


class Events:
    """Emit plugin events and record audit rows.

    Args:
        hook: The plugin manager's hook relay (``manager.hook``).
        sink: Where audit rows go.
        spawn: Runs a coroutine in the background (the audit hook must not slow requests).
    """

    def __init__(self, hook: pluggy.HookRelay, sink: AuditSink, spawn: Spawn) -> None:
        self.hook = hook
        self.sink = sink
        self.spawn = spawn

    async def emit(self, name: str, /, **kwargs: Any) -> list[Any]:
        """Call the event hook ``tenantkit_<name>``, awaiting async implementations."""
        return await call_event(getattr(self.hook, f"tenantkit_{name}"), **kwargs)

    def audit(
        self,
        action: str,
        *,
        tenant_id: uuid.UUID | None,
        actor_id: uuid.UUID | None = None,
        target: str | None = None,
        ip: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record what a tenant's member did, or what was done to them (buffered, never blocks).

        ``tenant_id=None`` writes to the platform's log (the nil tenant).
        """
        principal = current_principal()
        if principal is not None:  # name the key, or the real actor of an impersonation, in every row
            if principal.api_key is not None:
                data = {**(data or {}), "api_key_id": str(principal.api_key.id)}
            elif principal.impersonator_id is not None:
                data = {**(data or {}), "impersonator_id": str(principal.impersonator_id)}
        event = {
            "action": action,
            "tenant_id": str(tenant_id or NIL_TENANT),
            "actor_id": str(actor_id) if actor_id else None,
            "target": target,
            "ip": ip or current_client_ip(),
            "request_id": current_request_id(),
            "data": data or {},
            "created_at": datetime.now(UTC).isoformat(),
        }
        audit_logger.info(action, extra={"audit": event})
        self.sink.record(event)
        self.spawn(self.emit("on_audit_event", event=event))
        return event

    def security(self, action: str, *, ip: str | None = None, data: dict[str, Any] | None = None) -> None:
        """Record an unauthenticated security event in the platform's log (never a tenant's).

        Carries no actor and no target: a row must not tell whether an email has an account.
        """
        self.audit(action, tenant_id=None, ip=ip, data=data)
        security_logger.warning(
            action, extra={"security": {"action": action, "ip": ip or current_client_ip()}}
        )
