"""SCIM 2.0 provisioning (RFC 7643/7644): a tenant's directory manages its members.

* :class:`~tenantkit.scim.tokens.ScimTokens`: the tenant's SCIM bearer tokens
  (``/tenant/scim-tokens``, :class:`~tenantkit.scim.token_routes.ScimTokenRoutes`).
* ``/scim/v2`` (:mod:`tenantkit.scim.routes`, needs the ``scim`` extra):
  users are members, groups are roles (:mod:`tenantkit.scim.service`).
"""

from tenantkit.scim.token_routes import ScimTokenRoutes
from tenantkit.scim.tokens import SCIM_TOKEN_PREFIX, ScimTokens

__all__ = ["SCIM_TOKEN_PREFIX", "ScimTokenRoutes", "ScimTokens"]
