"""Response models of tenantkit's own routes, used only to document them.

The handlers build their JSON by hand; these models state the same shapes so
the OpenAPI document (and contract tests run from it) describe what the
server really sends. Timestamps are ISO 8601 strings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = [
    "AcceptedOut",
    "AuditEventOut",
    "AuditPage",
    "DeadLetterOut",
    "DeadLetterPage",
    "DeliveryQuery",
    "HealthOut",
    "JWKSOut",
    "MeOut",
    "MembershipOut",
    "MyTenantOut",
    "MyTenantPage",
    "Problem",
    "ProblemFieldError",
    "RegisterOut",
    "RequeuedJobOut",
    "SessionOut",
    "SessionPage",
    "TenantSummary",
    "TokenPairOut",
    "UserOut",
    "WebhookDeliveryOut",
    "WebhookDeliveryPage",
    "WebhookEndpointCreatedOut",
    "WebhookEndpointOut",
    "WebhookEndpointPage",
]

Cursor = str | None


class ProblemFieldError(BaseModel):
    """One offending field of a 422 problem."""

    loc: list[str | int] = Field(description='Where the error is, e.g. ["body", "email"].')
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description='"about:blank" or "https://tenantkit.readthedocs.io/problems/<slug>".')
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemFieldError] | None = Field(
        default=None, description="Validation errors (422 only), one per offending field."
    )


class TenantSummary(BaseModel):
    """A tenant as the auth routes show it."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    slug: str
    name: str


class UserOut(BaseModel):
    """A user's identity."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    email: str


class TokenPairOut(BaseModel):
    """A fresh access token and its rotating refresh token."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str


class RegisterOut(BaseModel):
    """The new account, its tenant and its role there."""

    user: UserOut
    tenant: TenantSummary
    role: str


class UserRef(BaseModel):
    """A user, named."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    email: str | None


class MeOut(BaseModel):
    """The caller in the current tenant, with expanded permissions."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    email: str | None
    email_verified: bool = Field(False, description="The user proved they read mail at this address.")
    tenant: TenantSummary
    role: str
    permissions: list[str]
    impersonator: UserRef | None = Field(None, description="Present under impersonation: who really acts.")


class SessionOut(BaseModel):
    """A signed-in device of the caller."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    user_agent: str | None
    ip: str | None
    tenant_id: str = Field(json_schema_extra={"format": "uuid"})
    created_at: str
    last_used_at: str
    current: bool = Field(description="The session this request was made with.")
    impersonated_by: UserRef | None = Field(None, description="Set on an impersonation session.")


class SessionPage(BaseModel):
    """The caller's sessions."""

    items: list[SessionOut]
    next_cursor: Cursor


class MyTenantOut(BaseModel):
    """A tenant the caller belongs to."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    slug: str
    name: str
    role: str
    status: str = Field(description="'active' or 'suspended' (a suspended tenant cannot be entered).")
    current: bool = Field(description="The tenant this request's token is bound to.")


class MyTenantPage(BaseModel):
    """The caller's memberships, most recently used first."""

    items: list[MyTenantOut]
    next_cursor: Cursor


class MembershipOut(BaseModel):
    """A membership created by accepting an invitation."""

    tenant: TenantSummary
    user_id: str = Field(json_schema_extra={"format": "uuid"})
    role: str


class AcceptedOut(BaseModel):
    """A request accepted for later processing."""

    detail: str


class JWKSOut(BaseModel):
    """The public JSON Web Key Set verifying access tokens."""

    keys: list[dict[str, Any]]


class HealthOut(BaseModel):
    """Every backing service is reachable."""

    status: Literal["ok"]
    database: str = Field(description='"connected".')
    redis: str = Field(description='"connected", or "in-memory" on the embedded default.')


class WebhookEndpointOut(BaseModel):
    """A registered webhook endpoint (its secret is never shown again)."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: str


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    """A new endpoint with its signing secret, shown this once."""

    secret: str = Field(description="``whsec_...``: verifies the Standard Webhooks signature.")


class WebhookEndpointPage(BaseModel):
    """The current tenant's webhook endpoints."""

    items: list[WebhookEndpointOut]
    next_cursor: Cursor


class WebhookDeliveryOut(BaseModel):
    """One event's delivery to one endpoint."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    endpoint_id: str = Field(json_schema_extra={"format": "uuid"})
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class WebhookDeliveryPage(BaseModel):
    """An endpoint's latest deliveries."""

    items: list[WebhookDeliveryOut]
    next_cursor: Cursor


class AuditEventOut(BaseModel):
    """A security event of the current tenant."""

    id: str
    action: str
    actor_id: str | None
    target: str | None
    ip: str | None
    request_id: str | None
    data: dict[str, Any]
    created_at: str


class AuditPage(BaseModel):
    """Audit events, newest first."""

    items: list[AuditEventOut]
    next_cursor: Cursor


#: A job that exhausted its attempts (built dynamically: a field is named ``kwargs``).
DeadLetterOut: type[BaseModel] = create_model(
    "DeadLetterOut",
    __doc__="A job that exhausted its attempts.",
    id=(str, Field(json_schema_extra={"format": "uuid"})),
    tenant_id=(str | None, ...),
    task_name=(str, ...),
    args=(list[Any], ...),
    kwargs=(dict[str, Any], ...),
    labels=(dict[str, Any], ...),
    error=(str | None, ...),
    attempts=(int, ...),
    created_at=(str, ...),
    requeued_at=(str | None, ...),
)


class DeadLetterPage(BaseModel):
    """Dead letters visible to the caller."""

    items: list[DeadLetterOut]
    next_cursor: Cursor


class RequeuedJobOut(BaseModel):
    """A dead letter sent back to the queue."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    job_id: str


class DeliveryQuery(BaseModel):
    """Query of ``GET /webhooks/{id}/deliveries``."""

    status: Literal["pending", "delivered", "dead"] | None = Field(
        default=None, description="Only deliveries in this state."
    )
