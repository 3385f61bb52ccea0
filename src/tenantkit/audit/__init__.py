"""The audit log: security events buffered and written to ``audit_events`` in batches.

``kit.audit(...)`` records an event; ``kit.audit_log`` is the
:class:`AuditLog` behind it; ``GET /audit`` lists a tenant's events for
holders of ``audit.read``.
"""

from __future__ import annotations

from tenantkit.audit.log import AuditLog, AuditQuery
from tenantkit.audit.routes import audit_routes

__all__ = ["AuditLog", "AuditQuery", "audit_routes"]
