"""The audit log: security events buffered and written to ``audit_events`` in batches.

``Events.audit(...)`` records an event; :class:`AuditLog` writes it;
``GET /audit`` lists a tenant's events for holders of ``audit.read``.
"""

from __future__ import annotations

from tenantkit.audit.log import AuditLog, AuditQuery
from tenantkit.audit.routes import AuditRoutes

__all__ = ["AuditLog", "AuditQuery", "AuditRoutes"]
