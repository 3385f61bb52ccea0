"""Every hook tenantkit calls, grouped by phase.

Implement them in a plugin with ``@tenantkit.hookimpl``. One naming scheme:
event hooks report what happened and are named ``tenantkit_on_<event>``;
they may be ``async def`` (tenantkit awaits them). Every other hook
(``tenantkit_<verb>_<object>``) is synchronous: its result is used at once,
and ``firstresult`` hooks stop at the first non-``None`` result (pluggy does
not await, and a coroutine is never ``None``). An ``async def``
implementation of a synchronous hook is refused when the plugin registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenantkit.plugins.markers import hookspec

if TYPE_CHECKING:
    from starlette.requests import Request

    from tenantkit.context import Principal, TenantRef

# --------------------------------------------------------------------------- #
# Start-up
# --------------------------------------------------------------------------- #


@hookspec
def tenantkit_configure(kit: Any) -> None:
    """Called once when a ``TenantKit`` is built, after its plugins are registered.

    Args:
        kit: The ``TenantKit`` being built; read ``kit.settings``, keep references.
    """


@hookspec
def tenantkit_register_permissions() -> list[tuple[str, str]] | None:
    """Return permissions the plugin defines, as ``(code, description)`` pairs.

    Codes are ``resource.action`` (``reports.export``). Every result is merged
    into the permission registry before any request is served.
    """


@hookspec
def tenantkit_register_tasks(kit: Any) -> None:
    """Register background tasks with ``@kit.jobs.task(name=...)``.

    Called once while the kit is built, after its own tasks are registered.

    Args:
        kit: The kit whose job runner (``kit.jobs``) the tasks belong to.
    """


@hookspec
def tenantkit_migration_locations() -> list[str] | None:
    """Return extra alembic version locations (``"package:folder"``) to migrate with tenantkit's."""


# --------------------------------------------------------------------------- #
# Requests: tenancy and tokens
# --------------------------------------------------------------------------- #


@hookspec(firstresult=True)
def tenantkit_resolve_tenant(request: Request) -> str | None:
    """Name the tenant of a request (an id or slug) from anything in it.

    Consulted where ``"plugin"`` sits in ``Settings.tenant_resolvers``.
    Stops at the first non-None result. Must be synchronous.

    Args:
        request: The incoming request (headers, host, path; body not read).
    """


@hookspec
def tenantkit_access_token_claims(user_id: str, tenant_id: str, role: str) -> dict[str, Any] | None:
    """Return extra claims to add to an access token being issued.

    Registered claim names (``sub``, ``tid``, ``exp``...) cannot be overridden.

    Args:
        user_id: The subject.
        tenant_id: The tenant the token is bound to.
        role: The role the user holds in that tenant.
    """


@hookspec(firstresult=True)
def tenantkit_authorize(principal: Principal, permission: str, resource: Any) -> bool | None:
    """Decide whether ``principal`` may use ``permission`` on ``resource``.

    For ownership or attribute rules. Return ``True`` to allow, ``False`` to
    deny, ``None`` to leave the decision to the role's permissions. Stops at
    the first non-None result. Must be synchronous.

    Args:
        principal: The caller, with its live role in this tenant (not the token's claim).
        permission: The permission code being checked.
        resource: The object the endpoint is about to act on.
    """


@hookspec(firstresult=True)
def tenantkit_authorize_impersonation(
    actor_id: str, user_id: str, tenant_id: str, reason: str, read_only: bool
) -> bool | None:
    """Veto (``False``) or allow an impersonation that tenantkit's own rules already allowed.

    Return ``False`` to refuse it (403), ``None`` to let it go on; ``True``
    cannot widen tenantkit's rules (role rank, permission). Stops at the first
    non-None result. Must be synchronous.

    Args:
        actor_id: Who asks to act as the user.
        user_id: The user to be impersonated.
        tenant_id: The tenant the token will be bound to.
        reason: The reason given (audited).
        read_only: Whether the token may only read.
    """


# --------------------------------------------------------------------------- #
# Lifecycle events (may be async)
# --------------------------------------------------------------------------- #


@hookspec
def tenantkit_on_register(user_id: str, email: str, tenant_id: str, role: str) -> None:
    """A user registered (created an account and joined ``tenant_id`` as ``role``)."""


@hookspec
def tenantkit_on_login(user_id: str, tenant_id: str, session_id: str, ip: str | None) -> None:
    """A login succeeded and session ``session_id`` started."""


@hookspec
def tenantkit_on_login_failed(email: str, reason: str, ip: str | None) -> None:
    """A login failed.

    Args:
        email: The normalised email tried (may not exist).
        reason: ``"invalid_credentials"``, ``"locked"`` or ``"not_member"``.
        ip: The client address.
    """


@hookspec
def tenantkit_on_lockout(email: str, until: float, ip: str | None) -> None:
    """An account was locked after too many failures; ``until`` is a UNIX time."""


@hookspec
def tenantkit_on_logout(user_id: str, session_ids: list[str], reason: str) -> None:
    """Sessions ended (``reason``: logout, logout_all, revoked, password_changed, ...)."""


@hookspec
def tenantkit_on_token_reuse(user_id: str, session_id: str, classification: str, ip: str | None) -> None:
    """A spent, revoked or expired refresh token was presented; its family was revoked.

    Args:
        user_id: The owner of the family.
        session_id: The family that was revoked.
        classification: ``"spent"``, ``"revoked"`` or ``"expired"``.
        ip: The client address that presented it.
    """


@hookspec
def tenantkit_on_tenant_created(tenant: TenantRef, owner_id: str | None) -> None:
    """A tenant was created (``owner_id`` is its first ADMIN, if any)."""


@hookspec
def tenantkit_on_membership_changed(
    tenant_id: str, user_id: str, role: str | None, actor_id: str | None
) -> None:
    """A membership was added, changed (``role`` set) or removed (``role`` None)."""


@hookspec
def tenantkit_on_audit_event(event: dict[str, Any]) -> None:
    """An audit event was recorded (a sink: ship it to a SIEM, a log, ...).

    Args:
        event: ``{"action", "tenant_id", "actor_id", "target", "ip", "request_id",
            "data", "created_at"}``.
    """


# --------------------------------------------------------------------------- #
# Jobs, files and webhooks
# --------------------------------------------------------------------------- #


@hookspec
def tenantkit_on_job_start(task_name: str, tenant_id: str | None, labels: dict[str, Any]) -> None:
    """A job is about to run (tenant context already restored)."""


@hookspec
def tenantkit_on_job_success(task_name: str, tenant_id: str | None, labels: dict[str, Any]) -> None:
    """A job finished successfully."""


@hookspec
def tenantkit_on_job_failure(
    task_name: str, tenant_id: str | None, labels: dict[str, Any], error: str, dead: bool
) -> None:
    """A job attempt failed; ``dead`` is true when it went to the dead-letter store."""


@hookspec
def tenantkit_on_file_uploaded(file: dict[str, Any]) -> None:
    """An upload was completed and checksummed (thumbnails, virus scans...).

    Args:
        file: ``{"id", "tenant_id", "key", "filename", "content_type", "size", "sha256"}``.
    """


@hookspec
def tenantkit_on_webhook_delivered(endpoint_id: str, event_id: str, status: int, attempt: int) -> None:
    """A webhook delivery got a 2xx answer."""


@hookspec
def tenantkit_on_webhook_dead_lettered(endpoint_id: str, event_id: str, error: str, attempts: int) -> None:
    """A webhook delivery gave up after its last attempt."""


# --------------------------------------------------------------------------- #
# Federated identity (OpenID Connect sign-in, tenant single sign-on)
# --------------------------------------------------------------------------- #


@hookspec(firstresult=True)
def tenantkit_authorize_federated_login(
    provider: str, claims: dict[str, Any], user_id: str | None
) -> bool | str | None:
    """Decide whether a federated sign-in (or link) may go on, before anything is created.

    Args:
        provider: The provider's name (``google``), or ``sso:<tenant slug>``.
        claims: The ID token's claims (and userinfo's), already verified.
        user_id: The account it resolves to, or ``None`` for a new account.

    Returns:
        ``False`` or a reason (a string, shown in the 403) to refuse; ``None``
        or ``True`` to let it through.
    """


@hookspec(firstresult=True)
def tenantkit_map_federated_role(provider: str, claims: dict[str, Any], tenant_id: str) -> str | None:
    """The role a new single sign-on member gets in ``tenant_id`` (``None``: ``USER``)."""


@hookspec
def tenantkit_on_federated_login(
    user_id: str, provider: str, tenant_id: str | None, created: bool, linked: bool
) -> None:
    """A federated sign-in started a session (or a second-factor challenge).

    ``created`` when the account was made by this sign-in; ``linked`` when the
    identity was linked to an existing account by a verified email.
    """


# --------------------------------------------------------------------------- #
# The administration console
# --------------------------------------------------------------------------- #


@hookspec
def tenantkit_console_panels() -> list[dict[str, Any]] | None:
    """Return panels the plugin adds to the administration console (``/console``).

    Each panel is ``{"id", "title", "script", "permission"?}``: ``id`` matches
    ``[a-z0-9][a-z0-9_-]*``, ``script`` is the path of a JavaScript module file on
    disk, served same-origin at ``{console_path}/assets/panels/{id}.js``. The console
    imports it and calls its exported ``render(container, api)``; ``api`` is the
    console's fetch helper (``api.get(path)``, ``api.send(method, path, body)``)
    carrying the in-memory access token. With ``permission``, only users holding
    that permission see the panel (the API still decides every request).
    """
