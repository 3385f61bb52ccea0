"""The composition root: :class:`TenantKit` builds every collaborator from one ``Settings``."""

from tenantkit.kit.core import TenantKit

__all__ = ["TenantKit"]
